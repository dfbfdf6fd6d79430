// The interface every mail protocol fills in (nginx's ngx_mail_protocol_t, as a value).
// Session, limits and backend code stay protocol-blind: they only see these types.
import type { Socket } from 'node:net';
import type { BackendConfig, ProtocolName, TlsMode } from '../config/schema.js';
import type { Credentials } from './sasl.js';

export interface MachineOptions {
  tlsMode: TlsMode;
  requireTls: boolean;
  maxBadCommands: number;
  maxAuthAttempts: number;
  /** Our host name, for greetings that carry one (SMTP 220, EHLO). */
  hostname: string;
  /** What the backend advertises, as last probed (protocol-specific: IMAP capability
   *  tokens, POP3 CAPA lines, SMTP EHLO keywords); empty when unknown. A snapshot taken when
   *  the session starts. */
  backendCapabilities: readonly string[];
}

/** Protocol-specific data the backend replay needs to frame its reply (e.g. the IMAP tag),
 *  as the machine knows it. */
export interface MachineLoginContext {
  /** IMAP: the client's tag, so the backend's tagged reply can be returned under it. */
  tag: string;
  /** Our host name (SMTP EHLO to the backend). */
  hostname: string;
}

/** Who the client is, as the session knows it (after a PROXY header, the header's view),
 *  for a backend that is told (PROXY out, IMAP ID, XCLIENT). Addresses in canonicalIp form. */
export interface ClientAddress {
  ip: string;
  port: number;
  /** The address and port the client connected to. */
  localIp: string;
  localPort: number;
  /** The session id in mailgate's logs ([A-Za-z0-9]), so both logs can be joined. */
  sessionId: string;
}

/** What the backend login replay gets: the machine's context plus the client, added by the
 *  session (machines are pure and never see addresses). */
export interface LoginContext extends MachineLoginContext {
  client: ClientAddress;
}

export type CloseReason = 'logout' | 'too-many-errors' | 'too-many-failures' | 'limited' | 'protocol-error' | 'timeout' | 'shutdown';

export type Effect =
  | { type: 'send'; data: string | Buffer }
  /** Stop reading plaintext, upgrade to TLS, then call tlsStarted(). `discarded`: bytes the
   *  client pipelined behind the command, thrown away unread (an injection attempt if > 0). */
  | { type: 'startTls'; discarded: number }
  /** Pause reading, run the auth path, then call loginResult() (or splice on success). */
  | { type: 'login'; credentials: Credentials; context: MachineLoginContext }
  /** The client's one-line answer to a challenge relayed with loginChallenge(), for the
   *  backend (already checked: "*" or strict base64). The login is still running. */
  | { type: 'loginResponse'; response: string }
  | { type: 'close'; reason: CloseReason };

export type LoginResult =
  | { kind: 'rejected'; reply: Buffer }
  | { kind: 'limited'; retryAfterSec: number }
  /** Not the user's failure; `reply`: the backend's own words for it (POP3 [IN-USE]),
   *  otherwise the protocol's temporary failure. */
  | { kind: 'unavailable'; reply?: Buffer }
  | { kind: 'invalid-user' };

/** denied: limits.deniedNetworks, a permanent refusal (the others are temporary). */
export type GoodbyeReason = 'timeout' | 'shutdown' | 'busy' | 'limited' | 'denied';

export interface ProtocolMachine {
  /** Greeting. */
  start(): Effect[];
  push(chunk: Buffer): Effect[];
  tlsStarted(): Effect[];
  loginResult(result: LoginResult): Effect[];
  /** During a login: send the backend's challenge (validated base64) in this protocol's form
   *  and read one response line, answered with a loginResponse effect (RFC 7628 §3.2.2 error
   *  challenges). loginResult() follows as for any login. */
  loginChallenge(text: string): Effect[];
  /** Raw bytes the client pipelined behind a successful login, to hand to the backend. */
  takeBuffered(): Buffer;
  /** The protocol's goodbye line for a session the proxy ends: pre-auth deadline, shutdown,
   *  connection limits (busy), or a client already refused by a limit at connect (limited,
   *  with the seconds to wait). Always a temporary failure. */
  goodbye(reason: GoodbyeReason, retryAfterSec?: number): string;
  /** Bytes buffered in the parser (for bounds and tests). */
  readonly bufferedBytes: number;
}

export type BackendLoginResult =
  | { kind: 'ok'; socket: Socket; clientReply: Buffer; leftover: Buffer }
  | { kind: 'rejected'; clientReply: Buffer }
  /** The backend accepted the credentials but cannot start the session now (POP3 [IN-USE],
   *  RFC 3206 §4: the maildrop is locked by another session). Not a failure. */
  | { kind: 'locked'; clientReply: Buffer }
  /** unreachable: the server could not be connected to (nothing was sent to it). */
  | { kind: 'unavailable'; error: string; unreachable?: boolean }
  /** The backend answered a token with an error challenge (RFC 7628 §3.2.2) and waits for
   *  the client's reply. `challenge`: validated base64 for the client; `respond` relays the
   *  client's line (null: the client is gone) and ends the attempt: 'ok' only if the backend
   *  says so, otherwise 'rejected' whatever happens, since the token was already refused. */
  | { kind: 'challenge'; challenge: string; respond(response: string | null): Promise<FinalBackendLoginResult> };

export type FinalBackendLoginResult = Exclude<BackendLoginResult, { kind: 'challenge' }>;

export type BackendLogin = (
  backend: BackendConfig,
  credentials: Credentials,
  context: LoginContext,
) => Promise<BackendLoginResult>;

export interface MailProtocol {
  name: ProtocolName;
  createMachine(opts: MachineOptions): ProtocolMachine;
  backendLogin: BackendLogin;
  /** Asks the backend what it supports (IMAP capabilities, POP3 CAPA lines, SMTP EHLO
   *  keywords), without logging in. Protocols whose pre-login advertisement must match the
   *  backend provide it. */
  probeCapabilities?: (backend: BackendConfig, hostname: string) => Promise<string[]>;
}
