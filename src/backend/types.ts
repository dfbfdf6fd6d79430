// What the backend layer promises the rest of the proxy: who the client is (to tell the
// backend), the context of one login replay, and the replay's verdict as data. Types only.
import type { Socket } from 'node:net';
import type { ServerTarget } from '../config/schema.js';
import type { Credentials } from '../protocols/sasl.js';
import type { MachineLoginContext } from '../protocols/protocol.js';

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

/** What the backend login replay gets: the machine's context plus what the session adds
 *  (machines are pure and never see addresses). */
export interface LoginContext extends MachineLoginContext {
  client: ClientAddress;
  /** Our host name (SMTP EHLO to the backend when the client's own EHLO name is not passed on). */
  hostname: string;
}

export type BackendLoginResult =
  | { kind: 'ok'; socket: Socket; clientReply: Buffer; leftover: Buffer }
  /** `clientReply`: the backend's own refusal for the client; null when mailgate refused
   *  without asking (a byte the replay cannot send): then the protocol's own wording. */
  | { kind: 'rejected'; clientReply: Buffer | null }
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

export type BackendLogin = (server: ServerTarget, credentials: Credentials, context: LoginContext) => Promise<BackendLoginResult>;

/** A protocol's replay toward its backend: the login, and the probe of what the backend
 *  advertises before login (IMAP capabilities, POP3 CAPA lines, SMTP EHLO keywords). */
export interface BackendReplay {
  login: BackendLogin;
  probeCapabilities(server: ServerTarget, hostname: string): Promise<string[]>;
}
