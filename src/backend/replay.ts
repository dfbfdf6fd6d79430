// The one skeleton of a login replay, whatever the protocol: connect, open the session as the
// client will find it, tell the backend who the client is, log in, read the verdict; the
// connection closed and every buffer that held a secret wiped on every path. A protocol
// brings a Dialect: its wording of those steps, and nothing of this plumbing. Which way the
// client is told (PROXY header, ID/XCLIENT, strictly or where offered) is decided here.
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
  /** Greeting, STARTTLS when configured (never a plaintext fallback), capabilities. `name`:
   *  what to greet the backend with where the protocol names itself (SMTP EHLO). */
  open(conn: BackendConn, server: ServerTarget, name: string): Promise<S>;
  /** forwardClientInfo: tell the backend the client's address (IMAP ID, XCLIENT) where it
   *  offers a way; `strict` (forwardClientInfo: true): a backend that offers none, or refuses,
   *  fails the login (a MailgateError) instead of the login going on without. */
  tellClient(conn: BackendConn, state: S, ctx: LoginContext, strict: boolean): Promise<S>;
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

/** How a login tells `server` who the client is: a PROXY header (connect.ts) and nothing
 *  more, or ID/XCLIENT as forwardClientInfo says ('auto' where offered, 'strict' always), or
 *  not at all (forwardClientInfo: false and no PROXY header). */
function forwarding(server: ServerTarget): 'proxy' | 'auto' | 'strict' | 'none' {
  if (server.proxyProtocol) return 'proxy';
  if (server.forwardClientInfo === false) return 'none';
  return server.forwardClientInfo === true ? 'strict' : 'auto';
}

/** The name a login greets the backend with (SMTP EHLO): the client's own (its EHLO) when the
 *  backend is told who the client is, so what it records (Dovecot's and Postfix's Received:
 *  from <name>) names the client's machine; mailgate's host name otherwise. */
function greetingName(server: ServerTarget, ctx: LoginContext): string {
  return forwarding(server) === 'none' ? ctx.hostname : (ctx.helo ?? ctx.hostname);
}

export function replay<S>(d: Dialect<S>): BackendReplay {
  return {
    async login(server, c, ctx) {
      if (d.unsendable?.(c)) return { kind: 'rejected', clientReply: null };
      let conn: BackendConn | null = null;
      const secrets: Buffer[] = [];
      try {
        conn = await BackendConn.open(server, ctx.client);
        let state = await d.open(conn, server, greetingName(server, ctx));
        const how = forwarding(server);
        if (how === 'auto' || how === 'strict') state = await d.tellClient(conn, state, ctx, how === 'strict');
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
