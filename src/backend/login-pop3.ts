// The POP3 dialect of the login replay (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH, 3206
// codes): greeting, STLS when configured (never a plaintext fallback), CAPA, XCLIENT where
// offered, then AUTH PLAIN (base64, no client byte reaches the line raw) or USER/PASS, or
// AUTH with a client's token message (RFC 7628). The skeleton around it is replay.ts.
import type { ServerTarget } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import type { BackendLoginResult, BackendReplay, FinalBackendLoginResult, LoginContext } from './types.js';
import type { Credentials, TokenCredentials } from '../protocols/sasl.js';
import { xclientCommand } from './client-info.js';
import type { BackendConn } from './connect.js';
import { replay } from './replay.js';
import { encodedMessage, errorChallenge } from './token-login.js';

/** RFC 2449 §4 / RFC 5034 §4: an AUTH command with its initial response is at most 255 octets
 *  including CRLF; longer responses go on the continuation line instead. */
const MAX_COMMAND_OCTETS = 255;

const isOk = (line: string) => /^\+OK(?: |$)/i.test(line);
const isErr = (line: string) => /^-ERR(?: |$)/i.test(line);

/** The CAPA lines as written (RFC 2449 §5). A server without CAPA answers -ERR: then there
 *  are none (and USER/PASS is used). */
async function capa(conn: BackendConn): Promise<string[]> {
  conn.write('CAPA\r\n');
  const status = await conn.readLine();
  if (!isOk(status)) {
    if (isErr(status)) return [];
    throw new MailgateError('MG_BACKEND_PROTOCOL', 'malformed reply to CAPA');
  }
  const lines: string[] = [];
  for (;;) {
    const line = await conn.readLine();
    if (line === '.') return lines;
    // Dot-stuffed lines (RFC 1939 §3) lose their first dot.
    lines.push(line.startsWith('.') ? line.slice(1) : line);
  }
}

/** Arguments of a CAPA line by name, matched as exact upper-cased tokens; null if absent. */
function capaArgs(lines: readonly string[], name: string): string[] | null {
  for (const l of lines) {
    const [n, ...args] = l.toUpperCase().split(' ');
    if (n === name) return args.filter(Boolean);
  }
  return null;
}

interface Pop3State {
  /** CAPA lines, as written. */
  lines: string[];
  xclient: boolean;
}

/** Greeting, STLS when configured, CAPA: the session as the client will find it. Dovecot
 *  announces XCLIENT to trusted peers in its greeting ("+OK [XCLIENT] …"), not in CAPA. */
async function open(conn: BackendConn, server: ServerTarget): Promise<Pop3State> {
  const greeting = await conn.readLine();
  if (!isOk(greeting)) throw new MailgateError('MG_BACKEND_PROTOCOL', `unexpected greeting: ${greeting.slice(0, 80)}`);
  if (server.tls === 'starttls') {
    conn.write('STLS\r\n');
    if (!isOk(await conn.readLine())) throw new MailgateError('MG_BACKEND_TLS', 'backend refused STLS');
    // Aborts if the backend sent anything after its +OK (Exim CVE-2021-38371).
    await conn.startTls();
  }
  const lines = await capa(conn);
  return { lines, xclient: /^\+OK \[XCLIENT\]/i.test(greeting) || capaArgs(lines, 'XCLIENT') !== null };
}

/** forwardClientInfo: XCLIENT ADDR PORT, where the server offers it (Dovecot only to its
 *  login_trusted_networks). Strict: a server that does not offer it, or refuses it, cannot be
 *  told, and a silent login as mailgate's address is not what was configured; otherwise the
 *  login goes on without. */
async function sendXclient(conn: BackendConn, s: Pop3State, ctx: LoginContext, strict: boolean): Promise<Pop3State> {
  if (!s.xclient) {
    if (strict) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend does not offer XCLIENT (needed by forwardClientInfo: true)');
    return s;
  }
  conn.write(xclientCommand(ctx.client, null, 'pop3'));
  if (!isOk(await statusLine(conn, 'XCLIENT')) && strict) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend refused XCLIENT');
  return s;
}

/** A status line that ends an exchange; anything else means the backend is not speaking POP3. */
async function statusLine(conn: BackendConn, what: string): Promise<string> {
  const line = await conn.readLine();
  if (!isOk(line) && !isErr(line)) throw new MailgateError('MG_BACKEND_PROTOCOL', `malformed reply to ${what}`);
  return line;
}

const isChallenge = (line: string) => line === '+' || line.startsWith('+ ');

/** AUTH with a base64 response (`encoded`), on the command line when it fits, else on the
 *  "+ " continuation; returns the server's next line, unchecked. `secrets` collects buffers
 *  to wipe. */
async function sendAuth(conn: BackendConn, mechanism: string, encoded: Buffer, secrets: Buffer[]): Promise<string> {
  const prefix = Buffer.from(`AUTH ${mechanism} `);
  if (prefix.length + encoded.length + 2 <= MAX_COMMAND_OCTETS) {
    const line = Buffer.concat([prefix, encoded, Buffer.from('\r\n')]);
    secrets.push(line);
    conn.write(line);
    return conn.readLine();
  }
  conn.write(`AUTH ${mechanism}\r\n`);
  const cont = await conn.readLine();
  if (!isChallenge(cont)) {
    if (isErr(cont)) return cont;
    throw new MailgateError('MG_BACKEND_PROTOCOL', `malformed reply to AUTH ${mechanism}`);
  }
  const line = Buffer.concat([encoded, Buffer.from('\r\n')]);
  secrets.push(line);
  conn.write(line);
  return conn.readLine();
}

/** AUTH PLAIN (RFC 4616): \0 user \0 password. */
async function authPlain(conn: BackendConn, c: Credentials, secrets: Buffer[]): Promise<string> {
  const plain = Buffer.concat([Buffer.from([0]), c.user, Buffer.from([0]), c.password]);
  secrets.push(plain);
  // The base64 string itself cannot be wiped (JS strings are immutable); it is short-lived.
  const token = Buffer.from(plain.toString('base64'), 'latin1');
  secrets.push(token);
  const reply = await sendAuth(conn, 'PLAIN', token, secrets);
  if (!isOk(reply) && !isErr(reply)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'malformed reply to AUTH');
  return reply;
}

/** USER then PASS (RFC 1939 §7); the first -ERR ends the exchange. */
async function userPass(conn: BackendConn, c: Credentials, secrets: Buffer[]): Promise<string> {
  const user = Buffer.concat([Buffer.from('USER '), c.user, Buffer.from('\r\n')]);
  secrets.push(user);
  conn.write(user);
  const first = await statusLine(conn, 'USER');
  if (!isOk(first)) return first;
  const pass = Buffer.concat([Buffer.from('PASS '), c.password, Buffer.from('\r\n')]);
  secrets.push(pass);
  conn.write(pass);
  return statusLine(conn, 'PASS');
}

/** CR or LF would split a USER/PASS line into two commands; NUL would split an AUTH PLAIN
 *  message into other fields. Neither is ever sent. */
const hasBreakingByte = (b: Buffer) => b.includes(0x0d) || b.includes(0x0a) || b.includes(0x00);

/** The status line that ends our login: +OK hands the connection over. */
function verdict(conn: BackendConn, reply: string): FinalBackendLoginResult {
  if (isOk(reply)) {
    const { socket, leftover } = conn.release();
    return { kind: 'ok', socket, clientReply: Buffer.from(`${reply}\r\n`, 'latin1'), leftover };
  }
  conn.close('QUIT\r\n');
  // RFC 3206 §4 SYS/TEMP: a server-side problem, not the user's failure.
  if (/^-ERR \[SYS\/TEMP\b/i.test(reply)) return { kind: 'unavailable', error: `backend: ${reply.slice(0, 120)}` };
  // RFC 3206 §4 IN-USE: "the authentication was successful" but the maildrop is locked by
  // another session (a phone and a desktop both polling): the client gets the backend's own
  // words, and the attempt is never the user's failure.
  if (/^-ERR \[IN-USE\b/i.test(reply)) return { kind: 'locked', clientReply: Buffer.from(`${reply}\r\n`, 'latin1') };
  return { kind: 'rejected', clientReply: Buffer.from(`${reply}\r\n`, 'latin1') };
}

/** AUTH with the client's own token message; a "+ …" reply is the error challenge of a
 *  refused token (RFC 7628 §3.2.2), relayed to the client. */
async function tokenLogin(conn: BackendConn, { lines }: Pop3State, c: TokenCredentials, _ctx: LoginContext, secrets: Buffer[]): Promise<BackendLoginResult> {
  if (!capaArgs(lines, 'SASL')?.includes(c.mechanism)) throw new MailgateError('MG_BACKEND_PROTOCOL', `backend does not offer ${c.mechanism}`);
  const message = encodedMessage(c);
  secrets.push(message);
  const reply = await sendAuth(conn, c.mechanism, message, secrets);
  if (isChallenge(reply)) {
    return errorChallenge(conn, reply.slice(2), async (response) => {
      conn.write(`${response}\r\n`);
      return verdict(conn, await statusLine(conn, 'AUTH'));
    });
  }
  if (!isOk(reply) && !isErr(reply)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'malformed reply to AUTH');
  return verdict(conn, reply);
}

/** AUTH PLAIN where the backend lists it (RFC 2449 §6.3 "SASL PLAIN LOGIN", exact tokens),
 *  else USER/PASS. */
async function passwordLogin(conn: BackendConn, { lines }: Pop3State, c: Credentials, _ctx: LoginContext, secrets: Buffer[]): Promise<FinalBackendLoginResult> {
  const plain = capaArgs(lines, 'SASL')?.includes('PLAIN') ?? false;
  return verdict(conn, plain ? await authPlain(conn, c, secrets) : await userPass(conn, c, secrets));
}

export const pop3Replay: BackendReplay = replay<Pop3State>({
  open,
  tellClient: sendXclient,
  passwordLogin,
  tokenLogin,
  capabilities: (s) => s.lines,
  goodbye: 'QUIT\r\n',
  unsendable: (c) => hasBreakingByte(c.user) || hasBreakingByte(c.password),
});

export const pop3BackendLogin = pop3Replay.login;
