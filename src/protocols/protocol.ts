// The interface every mail protocol fills in (nginx's ngx_mail_protocol_t, as a value).
// Session, limits and backend code stay protocol-blind: they only see these types.
import type { ProtocolName, TlsMode } from '../config/schema.js';
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
  /** SMTP: the name the client gave in EHLO/HELO (printable ASCII, no space, at most 255
   *  octets), for a backend told who the client is (XCLIENT HELO=, mailgate's EHLO). */
  helo?: string;
  /** IMAP: the "name" the client gave in ID (RFC 2971), printable ASCII, at most 64
   *  characters: for the login history only, never believed or forwarded. */
  clientName?: string;
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
  /** `reply`: the backend's own refusal; null: the protocol's failure reply. */
  | { kind: 'rejected'; reply: Buffer | null; /** The tarpit's delay, when the caller waits it (auth_http). */ tarpitMs?: number }
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
  /** From now on each push(), resume(), loginResult() and loginChallenge() call handles at most
   *  `events` commands or answers to a challenge; complete ones beyond wait in the input
   *  (`pending`) for resume(), so the session can let other connections take their turn.
   *  Unbounded until called. */
  limitTurns(events: number): void;
  /** The last call stopped at its budget: complete input may be waiting for resume(). */
  readonly pending: boolean;
  /** Handles the next batch of what the input holds. */
  resume(): Effect[];
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
  /** Bytes buffered in the parser or line reader. The session never reads it: it is how the
   *  machine tests and fuzzers hold every machine to its bounds from the outside. */
  readonly bufferedBytes: number;
}

/** A protocol's client side (nginx's ngx_mail_protocol_t, as a value); its replay toward the
 *  backend is bound to it in src/registry.ts, so this folder never imports backend code. */
export interface MailProtocol {
  name: ProtocolName;
  createMachine(opts: MachineOptions): ProtocolMachine;
}
