// TLS for client-facing listeners: the certificates (and a clearly marked self-signed
// development certificate when configured to and the files are missing), session resumption
// by tickets (keys: tls-tickets.ts), and the server side of a handshake on an accepted
// connection.
import { constants as crypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import tls from 'node:tls';
import selfsigned from 'selfsigned';
import type { Config } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import { printable } from '../protocols/identity.js';
import type { TicketKeys } from './tls-tickets.js';

export const DEV_CERT_CN = 'mailgate development certificate - not for production';

export async function generateDevCertificate(cert: string, key: string): Promise<void> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: DEV_CERT_CN }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + 825 * 86_400_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  });
  mkdirSync(dirname(cert), { recursive: true });
  mkdirSync(dirname(key), { recursive: true });
  writeFileSync(key, pems.private, { mode: 0o600 });
  writeFileSync(cert, pems.cert, { mode: 0o644 });
}

/** What a client-facing TLS handshake uses: the default context, and (tls.sni) the one for the
 *  name the client asked for. */
export interface ServerTls {
  context: tls.SecureContext;
  /** Node's SNICallback; absent without tls.sni. */
  SNICallback?: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
}

/** The context for a client's SNI name: an exact name, else "*." and the name without its first
 *  label (one label only, as RFC 6125 §6.4.3 has it), else none (the default then serves). */
export function sniSelector(entries: { names: readonly string[]; context: tls.SecureContext }[]): (servername: string) => tls.SecureContext | undefined {
  const byName = new Map<string, tls.SecureContext>();
  for (const e of entries) for (const n of e.names) byName.set(n.toLowerCase(), e.context);
  return (servername) => {
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = byName.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? byName.get(`*${name.slice(dot)}`) : undefined;
  };
}

/** How long a session ticket opens (the lifetime hint clients are given, RFC 8446 §4.6.1):
 *  OpenSSL's default for a context Node makes outside a tls.Server, said here. A rotation ends
 *  it sooner (one key set). */
export const TICKET_LIFETIME_SEC = 7_200;

type Protocol = Pick<tls.SecureContextOptions, 'minVersion' | 'ciphers' | 'ecdhCurve' | 'secureOptions' | 'sessionTimeout'>;

/** One certificate and key, read now, with the protocol settings every context shares: a bad
 *  file or cipher list fails at start-up (or reload), not at the first client. `where` names
 *  the config keys in the error. Every context (tls.sni's too) seals and opens tickets with
 *  the process's keys, whichever of them OpenSSL asks. */
function context(certPath: string, keyPath: string, protocol: Protocol, where: string, tickets?: TicketKeys): tls.SecureContext {
  let ctx: tls.SecureContext;
  try {
    ctx = tls.createSecureContext({ cert: readFileSync(certPath), key: readFileSync(keyPath), ...protocol });
  } catch (err) {
    throw new MailgateError('MG_TLS_MATERIAL', `${where}: ${(err as Error).message}`);
  }
  tickets?.adopt(ctx);
  return ctx;
}

/** Resumption is by session tickets only: a TLSSocket made outside a tls.Server has no
 *  newSession/resumeSession events and Node turns OpenSSL's own session cache off, so a TLS 1.2
 *  session id never resumes. Off: no ticket (TLS 1.3's stateful tickets would need that cache
 *  too), a full handshake every time. */
const resumption = (cfg: NonNullable<Config['tls']>): Protocol =>
  cfg.sessionTickets ? { sessionTimeout: TICKET_LIFETIME_SEC } : { secureOptions: crypto.SSL_OP_NO_TICKET };

/** `tickets`: the process's ticket keys (absent: the primary, which only checks the files). */
export async function loadServerTls(cfg: Config['tls'], log: Logger, tickets?: TicketKeys): Promise<ServerTls | null> {
  if (!cfg) return null;
  if (cfg.devCertificate) {
    if (!existsSync(cfg.cert) && !existsSync(cfg.key)) {
      await generateDevCertificate(cfg.cert, cfg.key);
    }
    log.warn(
      { event: 'tls.dev-certificate', cert: cfg.cert },
      'using a self-signed development certificate (tls.devCertificate: true); clients will not trust it: configure a real certificate for production',
    );
  }
  const protocol = { minVersion: cfg.minVersion, ...(cfg.ciphers ? { ciphers: cfg.ciphers } : {}), ...(cfg.groups ? { ecdhCurve: cfg.groups } : {}), ...resumption(cfg) };
  const fallback = context(cfg.cert, cfg.key, protocol, 'tls.cert/tls.key', tickets);
  if (cfg.sni.length === 0) return { context: fallback };
  const select = sniSelector(cfg.sni.map((e, i) => ({ names: e.names, context: context(e.cert, e.key, protocol, `tls.sni.${i}.cert/key`, tickets) })));
  return { context: fallback, SNICallback: (servername, cb) => cb(null, select(servername) ?? fallback) };
}

/** The server side of a handshake on `raw` (implicit TLS, or after STARTTLS), within
 *  `deadlineMs`. Null when it failed, timed out or the client hung up; the TLS socket is then
 *  destroyed (the caller still owns `raw`). */
export async function acceptTls(raw: Socket, serverTls: ServerTls, deadlineMs: number): Promise<tls.TLSSocket | null> {
  const { context, SNICallback } = serverTls;
  const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context, ...(SNICallback ? { SNICallback } : {}) });
  const ok = await new Promise<boolean>((resolve) => {
    const settle = (result: boolean) => () => {
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(settle(false), deadlineMs);
    secure.once('secure', settle(true));
    secure.once('error', settle(false));
    // A client that hangs up mid-handshake (a port scan, a refused certificate) frees its
    // socket and its connection slot now, not at the handshake deadline.
    secure.once('end', settle(false));
    secure.once('close', settle(false));
  });
  if (ok) return secure;
  secure.destroy();
  return null;
}

/** What later log lines say of a finished handshake: the TLS version (who still needs an old
 *  one) and the name the client asked for (which domain a user came in by), the client's own
 *  text escaped like a user name. */
export function tlsFacts(secure: tls.TLSSocket): { tls: string; sni?: string } {
  const tlsVersion = secure.getProtocol() ?? 'unknown';
  const name = secure.servername;
  return typeof name === 'string' && name ? { tls: tlsVersion, sni: printable(Buffer.from(name, 'latin1'), 255) } : { tls: tlsVersion };
}
