// The SMTP submission dialect of the login replay (RFC 5321, 3207, 4954): greeting, EHLO (the
// client's own name when it is forwarded), STARTTLS when configured (never a plaintext
// fallback), EHLO again, XCLIENT where offered, AUTH PLAIN base64-encoded, or AUTH with a
// client's token message (RFC 7628), equally base64. The skeleton around it is replay.ts.
import type { ServerTarget } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import type { BackendLoginResult, BackendReplay, FinalBackendLoginResult, LoginContext } from './types.js';
import type { Credentials, TokenCredentials } from '../protocols/sasl.js';
import { isHeloName, xclientCommand } from './client-info.js';
import type { BackendConn } from './connect.js';
import { replay } from './replay.js';
import { encodedMessage, errorChallenge } from './token-login.js';

interface Reply {
  code: number;
  lines: string[];
  /** The reply as received, CRLF-terminated, to forward to the client. */
  raw: string;
}

/** A whole (possibly multi-line, "250-...") reply. */
async function readReply(conn: BackendConn): Promise<Reply> {
  const lines: string[] = [];
  for (;;) {
    const line = await conn.readLine();
    const m = /^(\d{3})([ -]|$)(.*)$/.exec(line);
    if (!m) throw new MailgateError('MG_BACKEND_PROTOCOL', 'malformed SMTP reply from backend');
    lines.push(line);
    if (m[2] !== '-') return { code: Number(m[1]), lines, raw: lines.map((l) => `${l}\r\n`).join('') };
  }
}

async function expectCode(conn: BackendConn, code: number, what: string): Promise<Reply> {
  const r = await readReply(conn);
  if (r.code !== code) throw new MailgateError('MG_BACKEND_PROTOCOL', `backend answered ${r.code} to ${what}`);
  return r;
}

/** EHLO keywords (the lines after the first), exactly as the backend wrote them. `name` may be
 *  the client's (checked again here: it is written raw). */
async function ehlo(conn: BackendConn, name: string): Promise<string[]> {
  if (!isHeloName(name)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'cannot greet the backend: bad EHLO name');
  conn.write(`EHLO ${name}\r\n`);
  const r = await expectCode(conn, 250, 'EHLO');
  return r.lines.slice(1).map((l) => l.slice(4));
}

/** The EHLO line of keyword `name` (upper case), as the backend wrote it. */
const keyword = (keywords: readonly string[], name: string) => keywords.find((k) => k.split(' ')[0]!.toUpperCase() === name);
/** Whether the backend's EHLO lines offer keyword `name` (upper case). */
export const offersKeyword = (keywords: readonly string[], name: string) => keyword(keywords, name) !== undefined;

interface SmtpState {
  /** EHLO keywords, as written. */
  keywords: string[];
  /** The name our EHLO carries: the client's own when it is forwarded, else our host name. */
  name: string;
}

/** forwardClientInfo: XCLIENT with the attributes the server lists (Postfix XCLIENT_README),
 *  the client's EHLO name as HELO among them. Postfix and Dovecot answer 220 with a fresh
 *  greeting and forget the EHLO: send it again (both then record its name, not XCLIENT's
 *  HELO; it is the client's anyway). Strict: a server that does not offer XCLIENT, or refuses
 *  it, cannot be told, and a silent login as mailgate's address is not what was configured;
 *  otherwise the login goes on without (Dovecot offers XCLIENT only to its
 *  login_trusted_networks). */
async function sendXclient(conn: BackendConn, s: SmtpState, ctx: LoginContext, strict: boolean): Promise<SmtpState> {
  const offered = keyword(s.keywords, 'XCLIENT');
  if (!offered) {
    if (strict) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend does not offer XCLIENT (needed by forwardClientInfo: true)');
    return s;
  }
  conn.write(xclientCommand(ctx.client, offered.split(' ').slice(1), 'smtp', ctx.helo));
  const r = await readReply(conn);
  if (r.code === 220) return { ...s, keywords: await ehlo(conn, s.name) };
  if (r.code !== 250 && strict) throw new MailgateError('MG_BACKEND_PROTOCOL', `backend answered ${r.code} to XCLIENT`);
  return s;
}

/** Greeting, EHLO and, when configured, STARTTLS and EHLO again: the session as the client
 *  will find it after the login. */
async function open(conn: BackendConn, server: ServerTarget, name: string): Promise<SmtpState> {
  await expectCode(conn, 220, 'the connection');
  const keywords = await ehlo(conn, name);
  if (server.tls !== 'starttls') return { keywords, name };
  if (!offersKeyword(keywords, 'STARTTLS')) throw new MailgateError('MG_BACKEND_TLS', 'backend does not offer STARTTLS');
  conn.write('STARTTLS\r\n');
  await expectCode(conn, 220, 'STARTTLS');
  await conn.startTls();
  return { keywords: await ehlo(conn, name), name };
}

/** The reply that ends our AUTH: 235 hands the connection over. */
function verdict(conn: BackendConn, reply: Reply): FinalBackendLoginResult {
  if (reply.code === 235) {
    const { socket, leftover } = conn.release();
    return { kind: 'ok', socket, clientReply: Buffer.from(reply.raw, 'latin1'), leftover };
  }
  conn.close('QUIT\r\n');
  // 4xx: the server cannot decide now (RFC 4954 §6: 454); not the user's failure.
  if (reply.code >= 400 && reply.code < 500) return { kind: 'unavailable', error: `backend answered ${reply.code} to AUTH` };
  return { kind: 'rejected', clientReply: Buffer.from(reply.raw, 'latin1') };
}

/** AUTH with the client's own token message (RFC 4954 §4 allows the long line); a 334 reply
 *  is the error challenge of a refused token (RFC 7628 §3.2.2), relayed to the client. */
async function tokenLogin(conn: BackendConn, { keywords }: SmtpState, c: TokenCredentials, _ctx: LoginContext, secrets: Buffer[]): Promise<BackendLoginResult> {
  const auth = keyword(keywords, 'AUTH');
  if (!auth?.toUpperCase().split(' ').includes(c.mechanism)) throw new MailgateError('MG_BACKEND_PROTOCOL', `backend does not offer AUTH ${c.mechanism}`);
  const message = encodedMessage(c);
  const line = Buffer.concat([Buffer.from(`AUTH ${c.mechanism} `), message, Buffer.from('\r\n')]);
  secrets.push(message, line);
  conn.write(line);
  const reply = await readReply(conn);
  if (reply.code !== 334) return verdict(conn, reply);
  return errorChallenge(conn, reply.lines[0]!.slice(4), async (response) => {
    conn.write(`${response}\r\n`);
    return verdict(conn, await readReply(conn));
  });
}

/** AUTH PLAIN, base64-encoded, so no client byte reaches the line unencoded. */
async function passwordLogin(conn: BackendConn, { keywords }: SmtpState, c: Credentials, _ctx: LoginContext, secrets: Buffer[]): Promise<FinalBackendLoginResult> {
  const auth = keyword(keywords, 'AUTH');
  if (!auth || !auth.toUpperCase().split(' ').includes('PLAIN')) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend does not offer AUTH PLAIN');
  const plain = Buffer.concat([Buffer.from([0]), c.user, Buffer.from([0]), c.password]);
  const line = Buffer.from(`AUTH PLAIN ${plain.toString('base64')}\r\n`);
  plain.fill(0);
  secrets.push(line);
  conn.write(line);
  return verdict(conn, await readReply(conn));
}

export const smtpReplay: BackendReplay = replay<SmtpState>({
  open,
  tellClient: sendXclient,
  passwordLogin,
  tokenLogin,
  capabilities: (s) => s.keywords,
  goodbye: 'QUIT\r\n',
});

export const smtpBackendLogin = smtpReplay.login;
