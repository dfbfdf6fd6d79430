// IMAP login replay to the backend (RFC 9051 §6.2.3, LITERAL+ RFC 7888): greeting, optional
// STARTTLS, LOGIN with literals (user strings are never quoted by hand), tagged reply
// rewritten to the client's tag. Failures never downgrade to plaintext.
import type { BackendConfig } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import type { BackendLoginResult, LoginContext } from '../protocols/protocol.js';
import type { Credentials } from '../protocols/sasl.js';
import { BackendConn } from './connect.js';

const TAG = 'mg1';

/** Capability tokens from "* OK [CAPABILITY ...]" or "* CAPABILITY ...", matched exactly. */
function capsOf(line: string): Set<string> | null {
  const m = /^\* (?:OK \[CAPABILITY ([^\]]*)\]|CAPABILITY (.*))/i.exec(line);
  if (!m) return null;
  return new Set((m[1] ?? m[2]!).toUpperCase().split(' ').filter(Boolean));
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

async function capabilitiesAfterTls(conn: BackendConn): Promise<Set<string>> {
  conn.write(`${TAG} CAPABILITY\r\n`);
  const { untagged, tagged } = await untilTagged(conn, TAG);
  if (!/^\S+ OK/i.test(tagged)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend refused CAPABILITY');
  for (const l of untagged) {
    const c = capsOf(l);
    if (c) return c;
  }
  return capsOf(`* CAPABILITY ${/\[CAPABILITY ([^\]]*)\]/i.exec(tagged)?.[1] ?? ''}`) ?? new Set();
}

async function sendLogin(conn: BackendConn, caps: Set<string>, c: Credentials): Promise<void> {
  // LITERAL+ (or LITERAL- for small values) saves two round trips per login.
  const nonSync = caps.has('LITERAL+') || (caps.has('LITERAL-') && c.user.length <= 4096 && c.password.length <= 4096);
  if (nonSync) {
    conn.write(Buffer.concat([
      Buffer.from(`${TAG} LOGIN {${c.user.length}+}\r\n`), c.user,
      Buffer.from(` {${c.password.length}+}\r\n`), c.password, Buffer.from('\r\n'),
    ]));
    return;
  }
  const expectContinue = async () => {
    const line = await conn.readLine();
    if (!line.startsWith('+')) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend did not accept the literal');
  };
  conn.write(`${TAG} LOGIN {${c.user.length}}\r\n`);
  await expectContinue();
  conn.write(Buffer.concat([c.user, Buffer.from(` {${c.password.length}}\r\n`)]));
  await expectContinue();
  conn.write(Buffer.concat([c.password, Buffer.from('\r\n')]));
}

export async function imapBackendLogin(cfg: BackendConfig, c: Credentials, ctx: LoginContext): Promise<BackendLoginResult> {
  let conn: BackendConn | null = null;
  try {
    conn = await BackendConn.open(cfg);
    const greeting = await conn.readLine();
    // A PREAUTH greeting would skip the login we must see; BYE means the server is refusing.
    if (!/^\* OK\b/i.test(greeting)) throw new MailgateError('MG_BACKEND_PROTOCOL', `unexpected greeting: ${greeting.slice(0, 80)}`);
    let caps = capsOf(greeting) ?? new Set<string>();
    if (cfg.tls === 'starttls') {
      if (!caps.has('STARTTLS') && caps.size > 0) throw new MailgateError('MG_BACKEND_TLS', 'backend does not offer STARTTLS');
      conn.write(`${TAG} STARTTLS\r\n`);
      const { tagged } = await untilTagged(conn, TAG);
      if (!/^\S+ OK/i.test(tagged)) throw new MailgateError('MG_BACKEND_TLS', 'backend refused STARTTLS');
      await conn.startTls();
      caps = await capabilitiesAfterTls(conn);
    } else if (caps.size === 0) {
      caps = await capabilitiesAfterTls(conn);
    }
    await sendLogin(conn, caps, c);
    const { untagged, tagged } = await untilTagged(conn, TAG);
    const status = tagged.slice(TAG.length + 1, TAG.length + 4).toUpperCase();
    const reply = Buffer.from([...untagged, `${ctx.tag}${tagged.slice(TAG.length)}`].map((l) => `${l}\r\n`).join(''), 'latin1');
    if (status === 'OK ') {
      const { socket, leftover } = conn.release();
      return { kind: 'ok', socket, clientReply: reply, leftover };
    }
    conn.close(`${TAG} LOGOUT\r\n`);
    // Only the tagged failure goes back to the client; untagged chatter is dropped.
    return { kind: 'rejected', clientReply: Buffer.from(`${ctx.tag}${tagged.slice(TAG.length)}\r\n`, 'latin1') };
  } catch (err) {
    conn?.close();
    return { kind: 'unavailable', error: (err as Error).message };
  }
}
