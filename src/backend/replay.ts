// The one skeleton of a login replay, whatever the protocol: connect, open the session as the
// client will find it, tell the backend who the client is, log in, read the verdict; the
// connection closed and every buffer that held a secret wiped on every path. A protocol
// brings a Dialect: its wording of those steps, and nothing of this plumbing.
import type { ServerTarget } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import { isTokenLogin, type Credentials, type TokenCredentials } from '../protocols/sasl.js';
import { BackendConn, isUnreachable } from './connect.js';
import type { BackendLoginResult, BackendReplay, LoginContext } from './types.js';

/** One protocol's side of the replay. `S` is what `open` learned (capabilities and the like).
 *  A step that cannot go on throws a MailgateError (the backend is unavailable for now); any
 *  other exception is a bug, which the auth path logs with its stack. `secrets` collects every
 *  buffer built from credentials, wiped once the backend has answered them. */
export interface Dialect<S> {
  /** Greeting, STARTTLS when configured (never a plaintext fallback), capabilities. */
  open(conn: BackendConn, server: ServerTarget, hostname: string): Promise<S>;
  /** forwardClientInfo: tell the backend the client's address (IMAP ID, XCLIENT). */
  tellClient(conn: BackendConn, state: S, ctx: LoginContext): Promise<S>;
  passwordLogin(conn: BackendConn, state: S, c: Credentials, ctx: LoginContext, secrets: Buffer[]): Promise<BackendLoginResult>;
  /** A client's OAUTHBEARER / XOAUTH2 message, relayed as sent (RFC 7628). */
  tokenLogin(conn: BackendConn, state: S, c: TokenCredentials, ctx: LoginContext, secrets: Buffer[]): Promise<BackendLoginResult>;
  /** What the backend advertises before login, as written (for the capability probe). */
  capabilities(state: S): string[];
  /** What a probe says before it hangs up. */
  goodbye: string;
  /** Credentials the replay can never send as they are (a CR or LF would split a command):
   *  refused without a connection. */
  unsendable?(c: Credentials): boolean;
}

export function replay<S>(d: Dialect<S>): BackendReplay {
  return {
    async login(server, c, ctx) {
      if (d.unsendable?.(c)) return { kind: 'rejected', clientReply: null };
      let conn: BackendConn | null = null;
      const secrets: Buffer[] = [];
      try {
        conn = await BackendConn.open(server, ctx.client);
        let state = await d.open(conn, server, ctx.hostname);
        if (server.forwardClientInfo) state = await d.tellClient(conn, state, ctx);
        return isTokenLogin(c) ? await d.tokenLogin(conn, state, c, ctx, secrets) : await d.passwordLogin(conn, state, c, ctx, secrets);
      } catch (err) {
        conn?.close();
        if (!(err instanceof MailgateError)) throw err;
        return { kind: 'unavailable', error: err.message, unreachable: isUnreachable(err) };
      } finally {
        for (const b of secrets) b.fill(0);
      }
    },
    async probeCapabilities(server, hostname) {
      const conn = await BackendConn.open(server, null);
      try {
        const state = await d.open(conn, server, hostname);
        conn.close(d.goodbye);
        return d.capabilities(state);
      } catch (err) {
        conn.close();
        throw err;
      }
    },
  };
}
