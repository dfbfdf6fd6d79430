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
  /** What the backend advertises, as last probed (protocol-specific keywords, e.g. SMTP EHLO
   *  extensions); empty when unknown. A snapshot taken when the session starts. */
  backendCapabilities: readonly string[];
}

/** Protocol-specific data the backend replay needs to frame its reply (e.g. the IMAP tag). */
export interface LoginContext {
  /** IMAP: the client's tag, so the backend's tagged reply can be returned under it. */
  tag: string;
  /** Our host name (SMTP EHLO to the backend). */
  hostname: string;
}

export type CloseReason = 'logout' | 'too-many-errors' | 'too-many-failures' | 'limited' | 'protocol-error' | 'timeout' | 'shutdown';

export type Effect =
  | { type: 'send'; data: string | Buffer }
  /** Stop reading plaintext, upgrade to TLS, then call tlsStarted(). `discarded`: bytes the
   *  client pipelined behind the command, thrown away unread (an injection attempt if > 0). */
  | { type: 'startTls'; discarded: number }
  /** Pause reading, run the auth path, then call loginResult() (or splice on success). */
  | { type: 'login'; credentials: Credentials; context: LoginContext }
  | { type: 'close'; reason: CloseReason };

export type LoginResult =
  | { kind: 'rejected'; reply: Buffer }
  | { kind: 'limited'; retryAfterSec: number }
  | { kind: 'unavailable' }
  | { kind: 'invalid-user' };

export interface ProtocolMachine {
  /** Greeting. */
  start(): Effect[];
  push(chunk: Buffer): Effect[];
  tlsStarted(): Effect[];
  loginResult(result: LoginResult): Effect[];
  /** Raw bytes the client pipelined behind a successful login, to hand to the backend. */
  takeBuffered(): Buffer;
  /** The protocol's goodbye line for a session the proxy ends (deadline, shutdown). */
  goodbye(reason: 'timeout' | 'shutdown'): string;
  /** Bytes buffered in the parser (for bounds and tests). */
  readonly bufferedBytes: number;
}

export type BackendLoginResult =
  | { kind: 'ok'; socket: Socket; clientReply: Buffer; leftover: Buffer }
  | { kind: 'rejected'; clientReply: Buffer }
  | { kind: 'unavailable'; error: string };

export type BackendLogin = (
  backend: BackendConfig,
  credentials: Credentials,
  context: LoginContext,
) => Promise<BackendLoginResult>;

export interface MailProtocol {
  name: ProtocolName;
  createMachine(opts: MachineOptions): ProtocolMachine;
  backendLogin: BackendLogin;
  /** Asks the backend what it supports (e.g. SMTP EHLO keywords), without logging in.
   *  Protocols whose pre-login advertisement must match the backend provide it. */
  probeCapabilities?: (backend: BackendConfig, hostname: string) => Promise<string[]>;
}
