// The IMAP dialect of the login replay (RFC 9051 §6.2.3, LITERAL+ RFC 7888): greeting,
// optional STARTTLS, ID with the client address (RFC 2971), LOGIN with literals (user strings
// are never quoted by hand) or AUTHENTICATE with a client's token message (RFC 7628), the
// tagged reply under the client's tag. The skeleton around it is replay.ts.
import type { ServerTarget } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import { HalvingCache } from '../halving-cache.js';
import type { BackendLoginResult, BackendReplay, FinalBackendLoginResult, LoginContext } from './types.js';
import type { Credentials, TokenCredentials } from '../protocols/sasl.js';
import { imapIdCommand } from './client-info.js';
import type { BackendConn } from './connect.js';
import { replay } from './replay.js';
import { encodedMessage, errorChallenge } from './token-login.js';

const TAG = 'mg1';

/** Capability tokens from "* OK [CAPABILITY ...]" or "* CAPABILITY ...", as written; callers
 *  match them upper-cased and exactly (Dovecot fixed a prefix match: STARTTLSX). */
function capTokens(line: string): string[] | null {
  const m = /^\* (?:OK \[CAPABILITY ([^\]]*)\]|CAPABILITY (.*))/i.exec(line);
  if (!m) return null;
  return (m[1] ?? m[2]!).split(' ').filter(Boolean);
}

/** The capability lines read lately and what they say: a backend writes the same greeting (and,
 *  after STARTTLS, the same CAPABILITY line) login after login, so each is parsed once (issue
 *  22). Keyed by the exact text: a line that differs in any byte is parsed afresh. A few lines
 *  at most (a greeting and a CAPABILITY line per backend is what it is for). The states are
 *  frozen: every login shares them. */
const PARSED_LINES = 8;
const parsedLines = new HalvingCache<string, ImapState | null>(PARSED_LINES);
/** Longer lines are parsed every time, never kept (a backend's line has no length limit). */
const PARSED_LINE_CHARS = 4096;

/** The capabilities a greeting or CAPABILITY line states (null: it states none). */
export function capabilityState(line: string): ImapState | null {
  let s = parsedLines.get(line);
  if (s === undefined) {
    const tokens = capTokens(line);
    s = tokens ? state(tokens) : null;
    if (line.length <= PARSED_LINE_CHARS) parsedLines.set(line, s);
  }
  return s;
}

/** Read untagged lines until the tagged reply to `tag`. */
async function untilTagged(conn: BackendConn, tag: string): Promise<{ untagged: string[]; tagged: string }> {
  const untagged: string[] = [];
  for (;;) {
    const line = await conn.readLine();
    if (line.startsWith(`${tag} `)) return { untagged, tagged: line };
    if (line.startsWith('+')) throw new MailgateError('MG_BACKEND_PROTOCOL', 'unexpected continuation from backend');
    untagged.push(line);
  }
}

async function askCapabilities(conn: BackendConn): Promise<ImapState> {
  conn.write(`${TAG} CAPABILITY\r\n`);
  const { untagged, tagged } = await untilTagged(conn, TAG);
  if (!/^\S+ OK/i.test(tagged)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend refused CAPABILITY');
  for (const l of untagged) {
    const c = capabilityState(l);
    if (c) return c;
  }
  return capabilityState(`* CAPABILITY ${/\[CAPABILITY ([^\]]*)\]/i.exec(tagged)?.[1] ?? ''}`)!;
}

export interface ImapState {
  /** Capability tokens, as written. */
  readonly tokens: readonly string[];
  /** The same, upper-cased, for exact matches. */
  readonly caps: ReadonlySet<string>;
  /** An ID not sent yet (forwardClientInfo auto): it goes in the login's own write, its
   *  answer read and let go before the login's (pipelined, RFC 9051 §5.5). */
  readonly pendingId?: string;
}

const state = (tokens: string[]): ImapState => Object.freeze({ tokens: Object.freeze(tokens), caps: new Set(tokens.map((t) => t.toUpperCase())) });

/** Greeting, STARTTLS when configured (never a plaintext fallback) and the capabilities as
 *  they stand before the login: the session as the client will find it. */
async function open(conn: BackendConn, server: ServerTarget): Promise<ImapState> {
  const greeting = await conn.readLine();
  // A PREAUTH greeting would skip the login we must see; BYE means the server is refusing.
  if (!/^\* OK\b/i.test(greeting)) throw new MailgateError('MG_BACKEND_PROTOCOL', `unexpected greeting: ${greeting.slice(0, 80)}`);
  const offered = capabilityState(greeting);
  if (server.tls === 'starttls') {
    if (offered && offered.tokens.length > 0 && !offered.caps.has('STARTTLS')) throw new MailgateError('MG_BACKEND_TLS', 'backend does not offer STARTTLS');
    conn.write(`${TAG} STARTTLS\r\n`);
    const { tagged } = await untilTagged(conn, TAG);
    if (!/^\S+ OK/i.test(tagged)) throw new MailgateError('MG_BACKEND_TLS', 'backend refused STARTTLS');
    await conn.startTls();
    return askCapabilities(conn);
  }
  return offered && offered.tokens.length > 0 ? offered : askCapabilities(conn);
}

/** forwardClientInfo: ID with the client's address before LOGIN, where the server offers ID
 *  (one that does not trust mailgate answers it and ignores the fields). Strict: a server
 *  without ID, or refusing it, cannot be told, and a silent login as mailgate's address is
 *  not what was configured; otherwise the login goes on without. */
async function sendClientId(conn: BackendConn, s: ImapState, ctx: LoginContext, strict: boolean): Promise<ImapState> {
  if (!s.caps.has('ID')) {
    if (strict) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend does not offer ID (needed by forwardClientInfo: true)');
    return s;
  }
  // Where its answer does not matter, ID rides with the login: one write and one round trip
  // fewer per login. The server reads the two in order, so the login still carries the client.
  if (!strict) return { ...s, pendingId: imapIdCommand(TAG, ctx.client) };
  conn.write(imapIdCommand(TAG, ctx.client));
  const { tagged } = await untilTagged(conn, TAG);
  if (strict && !/^\S+ OK/i.test(tagged)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend refused ID');
  return s;
}

/** The pending ID, sent on its own where the login cannot carry it; its answer let go. */
async function flushId(conn: BackendConn, s: ImapState): Promise<void> {
  if (s.pendingId === undefined) return;
  conn.write(s.pendingId);
  await untilTagged(conn, TAG);
}

/** LOGIN with both values as literals; every buffer holding the password goes to `secrets`. */
async function passwordLogin(conn: BackendConn, s: ImapState, c: Credentials, ctx: LoginContext, secrets: Buffer[]): Promise<FinalBackendLoginResult> {
  const { caps } = s;
  // LITERAL+ (or LITERAL- for small values) saves two round trips per login.
  const nonSync = caps.has('LITERAL+') || (caps.has('LITERAL-') && c.user.length <= 4096 && c.password.length <= 4096);
  if (nonSync) {
    const command = Buffer.concat([
      Buffer.from(`${s.pendingId ?? ''}${TAG} LOGIN {${c.user.length}+}\r\n`), c.user,
      Buffer.from(` {${c.password.length}+}\r\n`), c.password, Buffer.from('\r\n'),
    ]);
    secrets.push(command);
    conn.write(command);
    if (s.pendingId !== undefined) await untilTagged(conn, TAG); // ID's answer, first in line
    return verdict(conn, await untilTagged(conn, TAG), ctx);
  }
  await flushId(conn, s);
  const expectContinue = async () => {
    const line = await conn.readLine();
    if (!line.startsWith('+')) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend did not accept the literal');
  };
  conn.write(`${TAG} LOGIN {${c.user.length}}\r\n`);
  await expectContinue();
  conn.write(Buffer.concat([c.user, Buffer.from(` {${c.password.length}}\r\n`)]));
  await expectContinue();
  const password = Buffer.concat([c.password, Buffer.from('\r\n')]);
  secrets.push(password);
  conn.write(password);
  return verdict(conn, await untilTagged(conn, TAG), ctx);
}

/** The tagged reply to our login, under the client's tag: OK hands the connection over. */
function verdict(conn: BackendConn, { untagged, tagged }: { untagged: string[]; tagged: string }, ctx: LoginContext): FinalBackendLoginResult {
  const status = tagged.slice(TAG.length + 1, TAG.length + 4).toUpperCase();
  const reply = Buffer.from([...untagged, `${ctx.tag}${tagged.slice(TAG.length)}`].map((l) => `${l}\r\n`).join(''), 'latin1');
  if (status === 'OK ') {
    const { socket, leftover } = conn.release();
    return { kind: 'ok', socket, clientReply: reply, leftover };
  }
  conn.close(`${TAG} LOGOUT\r\n`);
  // Only the tagged failure goes back to the client; untagged chatter is dropped.
  return { kind: 'rejected', clientReply: Buffer.from(`${ctx.tag}${tagged.slice(TAG.length)}\r\n`, 'latin1') };
}

/** AUTHENTICATE with the client's own message, in the command (SASL-IR, RFC 4959) where the
 *  backend offers it, else after its "+". A "+ …" instead of the tagged reply is the error
 *  challenge of a refused token (RFC 7628 §3.2.2), relayed to the client. */
async function tokenLogin(conn: BackendConn, s: ImapState, c: TokenCredentials, ctx: LoginContext, secrets: Buffer[]): Promise<BackendLoginResult> {
  const { caps } = s;
  if (!caps.has(`AUTH=${c.mechanism}`)) throw new MailgateError('MG_BACKEND_PROTOCOL', `backend does not offer ${c.mechanism}`);
  await flushId(conn, s);
  const message = encodedMessage(c);
  secrets.push(message);
  const line = (head: string) => {
    const b = Buffer.concat([Buffer.from(head), message, Buffer.from('\r\n')]);
    secrets.push(b);
    return b;
  };
  if (caps.has('SASL-IR')) conn.write(line(`${TAG} AUTHENTICATE ${c.mechanism} `));
  else {
    conn.write(`${TAG} AUTHENTICATE ${c.mechanism}\r\n`);
    if (!(await conn.readLine()).startsWith('+')) throw new MailgateError('MG_BACKEND_PROTOCOL', `backend refused AUTHENTICATE ${c.mechanism}`);
    conn.write(line(''));
  }
  const untagged: string[] = [];
  for (;;) {
    const reply = await conn.readLine();
    if (reply.startsWith(`${TAG} `)) return verdict(conn, { untagged, tagged: reply }, ctx);
    if (reply === '+' || reply.startsWith('+ ')) {
      return errorChallenge(conn, reply.slice(2), async (response) => {
        conn.write(`${response}\r\n`);
        return verdict(conn, await untilTagged(conn, TAG), ctx);
      });
    }
    untagged.push(reply);
  }
}

export const imapReplay: BackendReplay = replay<ImapState>({
  open,
  tellClient: sendClientId,
  passwordLogin,
  tokenLogin,
  capabilities: (s) => [...s.tokens],
  goodbye: `${TAG} LOGOUT\r\n`,
});

export const imapBackendLogin = imapReplay.login;
