// SMTP submission login replay (RFC 5321, 3207, 4954) and the EHLO capability probe:
// greeting, EHLO, STARTTLS when configured (never a plaintext fallback), EHLO again, XCLIENT
// when configured, AUTH PLAIN base64-encoded, so no client byte reaches the line unencoded, or
// AUTH with a client's token message (RFC 7628), equally base64.
import type { BackendConfig } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import type { BackendLoginResult, BackendReplay, ClientAddress, FinalBackendLoginResult, LoginContext } from './types.js';
import { isTokenLogin, type Credentials, type TokenCredentials } from '../protocols/sasl.js';
import { xclientCommand } from './client-info.js';
import { BackendConn, isUnreachable } from './connect.js';
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

/** EHLO keywords (the lines after the first), exactly as the backend wrote them. */
async function ehlo(conn: BackendConn, hostname: string): Promise<string[]> {
  conn.write(`EHLO ${hostname}\r\n`);
  const r = await expectCode(conn, 250, 'EHLO');
  return r.lines.slice(1).map((l) => l.slice(4));
}

const keyword = (keywords: string[], name: string) => keywords.find((k) => k.split(' ')[0]!.toUpperCase() === name);
const has = (keywords: string[], name: string) => keyword(keywords, name) !== undefined;

/** forwardClientInfo: XCLIENT with the attributes the server lists (Postfix XCLIENT_README).
 *  Postfix and Dovecot answer 220 with a fresh greeting and forget the EHLO: send it again.
 *  A server that does not offer XCLIENT cannot be told, and a silent login as mailgate's
 *  address is not what was configured. */
async function sendXclient(conn: BackendConn, keywords: string[], hostname: string, client: ClientAddress): Promise<string[]> {
  const offered = keyword(keywords, 'XCLIENT');
  if (!offered) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend does not offer XCLIENT (needed by forwardClientInfo)');
  conn.write(xclientCommand(client, offered.split(' ').slice(1), 'smtp'));
  const r = await readReply(conn);
  if (r.code === 220) return ehlo(conn, hostname);
  if (r.code === 250) return keywords;
  throw new MailgateError('MG_BACKEND_PROTOCOL', `backend answered ${r.code} to XCLIENT`);
}

/** Greeting, EHLO and, when configured, STARTTLS and EHLO again: the session as the client
 *  will find it after the login. */
async function open(cfg: BackendConfig, hostname: string, client: ClientAddress | null = null): Promise<{ conn: BackendConn; keywords: string[] }> {
  const conn = await BackendConn.open(cfg, client);
  try {
    await expectCode(conn, 220, 'the connection');
    let keywords = await ehlo(conn, hostname);
    if (cfg.tls === 'starttls') {
      if (!has(keywords, 'STARTTLS')) throw new MailgateError('MG_BACKEND_TLS', 'backend does not offer STARTTLS');
      conn.write('STARTTLS\r\n');
      await expectCode(conn, 220, 'STARTTLS');
      await conn.startTls();
      keywords = await ehlo(conn, hostname);
    }
    return { conn, keywords };
  } catch (err) {
    conn.close();
    throw err;
  }
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
async function tokenLogin(conn: BackendConn, auth: string | undefined, c: TokenCredentials, secrets: Buffer[]): Promise<BackendLoginResult> {
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
  }, () => ({ kind: 'rejected', clientReply: Buffer.from('535 5.7.8 Authentication credentials invalid\r\n') }));
}

export async function smtpBackendLogin(cfg: BackendConfig, c: Credentials, ctx: LoginContext): Promise<BackendLoginResult> {
  let conn: BackendConn | null = null;
  const secrets: Buffer[] = [];
  try {
    let keywords: string[];
    ({ conn, keywords } = await open(cfg, ctx.hostname, ctx.client));
    if (cfg.forwardClientInfo) keywords = await sendXclient(conn, keywords, ctx.hostname, ctx.client);
    const auth = keywords.find((k) => k.split(' ')[0]!.toUpperCase() === 'AUTH');
    if (isTokenLogin(c)) return await tokenLogin(conn, auth, c, secrets);
    if (!auth || !auth.toUpperCase().split(' ').includes('PLAIN')) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend does not offer AUTH PLAIN');
    const plain = Buffer.concat([Buffer.from([0]), c.user, Buffer.from([0]), c.password]);
    const line = Buffer.from(`AUTH PLAIN ${plain.toString('base64')}\r\n`);
    plain.fill(0);
    secrets.push(line);
    conn.write(line);
    return verdict(conn, await readReply(conn));
  } catch (err) {
    conn?.close();
    return { kind: 'unavailable', error: (err as Error).message, unreachable: isUnreachable(err) };
  } finally {
    // Lines built from credentials are wiped once the backend has answered them.
    for (const b of secrets) b.fill(0);
  }
}

/** The backend's EHLO keywords, as a client will see them after the login. */
export async function smtpProbeCapabilities(cfg: BackendConfig, hostname: string): Promise<string[]> {
  const { conn, keywords } = await open(cfg, hostname);
  conn.close('QUIT\r\n');
  return keywords;
}

export const smtpReplay: BackendReplay = { login: smtpBackendLogin, probeCapabilities: smtpProbeCapabilities };
