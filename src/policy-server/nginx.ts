// nginx's mail auth_http (ngx_mail_auth_http_module): nginx asks once per login with the
// client's credentials in headers. mailgate runs the limits, replays the login to the
// configured backend for the real verdict (the proxied login's own path, auth-path.ts), and
// answers Auth-Status OK with that server's address, or the protocol's error text with
// Auth-Wait. Pure of HTTP: headers in, headers out.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import { canonicalIp } from '../config/address.js';
import type { ProtocolName } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { PROTOCOLS } from '../registry.js';
import { authAttempt, type AuthDeps, type AuthOutcome } from '../server/auth-path.js';
import { newSessionId } from '../server/listener.js';

export interface NginxRequest {
  protocol: ProtocolName;
  /** Auth-Method: plain and login carry a password; none is SMTP without AUTH. */
  method: string;
  user: Buffer;
  pass: Buffer;
  clientIp: string;
  attempt: number;
  /** Auth-SMTP-Helo, for a backend told the client's EHLO name. */
  helo?: string;
}

/** What nginx gets back: header name → value. */
export type NginxAnswer = Record<string, string>;

/** nginx escapes " ", "%" and control characters of Auth-User and Auth-Pass as %XX (its
 *  NGX_ESCAPE_MAIL_AUTH); anything else, UTF-8 included, comes as it is. */
export function unescapeMailAuth(value: string): Buffer {
  const raw = Buffer.from(value, 'latin1');
  if (!raw.includes(0x25)) return raw;
  const out = Buffer.alloc(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const hex = raw[i] === 0x25 && i + 2 < raw.length ? raw.toString('latin1', i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else out[n++] = raw[i]!;
  }
  return out.subarray(0, n);
}

const PROTOCOL_NAMES = new Set<string>(['imap', 'pop3', 'smtp']);
const METHODS = new Set(['plain', 'login', 'none', 'apop', 'cram-md5', 'external']);

/** The request, or what is wrong with it (answered 400). */
export function parseNginx(h: Record<string, string | string[] | undefined>): NginxRequest | string {
  const one = (k: string) => (typeof h[k] === 'string' ? (h[k] as string) : undefined);
  const protocol = one('auth-protocol')?.toLowerCase();
  if (!protocol || !PROTOCOL_NAMES.has(protocol)) return 'Auth-Protocol: expected imap, pop3 or smtp';
  const method = (one('auth-method') ?? 'plain').toLowerCase();
  if (!METHODS.has(method)) return 'Auth-Method: unknown';
  const clientIp = canonicalIp(one('client-ip'));
  if (clientIp === null) return 'Client-IP: expected an IP address';
  const user = one('auth-user');
  if (user === undefined && method !== 'none') return 'Auth-User: missing';
  const attempt = Number(one('auth-login-attempt') ?? '1');
  return {
    protocol: protocol as ProtocolName,
    method,
    user: unescapeMailAuth(user ?? ''),
    pass: unescapeMailAuth(one('auth-pass') ?? ''),
    clientIp,
    attempt: Number.isSafeInteger(attempt) && attempt > 0 ? attempt : 1,
    helo: one('auth-smtp-helo'),
  };
}

/** The error texts nginx puts after IMAP's "tag NO", POP3's "-ERR" or SMTP's code. */
const TEXT = {
  limited: (p: ProtocolName, sec: number) => `${p === 'imap' ? '[UNAVAILABLE] ' : p === 'pop3' ? '[SYS/TEMP] ' : ''}Too many login attempts; try again in ${sec} seconds${p === 'smtp' ? '' : '.'}`,
  failed: (p: ProtocolName) => (p === 'imap' ? '[AUTHENTICATIONFAILED] Authentication failed.' : p === 'pop3' ? '[AUTH] Authentication failed.' : 'Authentication credentials invalid'),
  unavailable: (p: ProtocolName) => (p === 'imap' ? '[UNAVAILABLE] Mail server temporarily unavailable; try again later.' : p === 'pop3' ? '[SYS/TEMP] Mail server temporarily unavailable; try again later.' : 'Temporary authentication failure; try again later'),
};
const SMTP_CODE = { limited: '454 4.7.0', failed: '535 5.7.8', unavailable: '454 4.7.0' } as const;

/** The command that ends a verified backend session politely. */
const GOODBYE: Record<ProtocolName, string> = { imap: 'a2 LOGOUT\r\n', pop3: 'QUIT\r\n', smtp: 'QUIT\r\n' };

export interface NginxSettings {
  maxWaitMs: number;
  /** The backend that verifies logins of a protocol (policyServer.nginx). */
  backend(protocol: ProtocolName): string | undefined;
  /** The first server of a backend (SMTP without AUTH goes there unverified). */
  firstServer(backend: string): { host: string; port: number } | undefined;
}

export type NginxVerdict = 'allow' | 'refuse' | 'fail' | 'unavailable';

export async function answerNginx(deps: AuthDeps, settings: NginxSettings, log: Logger, r: NginxRequest, local: { ip: string; port: number }): Promise<{ verdict: NginxVerdict; headers: NginxAnswer }> {
  const wait = (ms: number) => String(Math.max(1, Math.ceil(Math.min(ms, settings.maxWaitMs) / 1000)));
  const error = (kind: keyof typeof SMTP_CODE, text: string, waitMs: number): NginxAnswer => ({
    'Auth-Status': text,
    'Auth-Wait': wait(waitMs),
    ...(r.protocol === 'smtp' ? { 'Auth-Error-Code': SMTP_CODE[kind] } : {}),
  });
  const backend = settings.backend(r.protocol);
  if (backend === undefined) {
    log.warn({ event: 'policy.no-backend', protocol: r.protocol }, `no backend for nginx ${r.protocol} logins: set policyServer.nginx.${r.protocol}`);
    return { verdict: 'unavailable', headers: error('unavailable', TEXT.unavailable(r.protocol), 1000) };
  }
  if (r.method === 'none') {
    // SMTP without AUTH (smtp_auth none): no login for the limits to judge.
    const s = settings.firstServer(backend);
    // nginx wants an address, not a name.
    const ip = s && (isIP(s.host) ? s.host : await lookup(s.host).then((a) => a.address, () => null));
    return s && ip ? { verdict: 'allow', headers: { 'Auth-Status': 'OK', 'Auth-Server': ip, 'Auth-Port': String(s.port) } } : { verdict: 'unavailable', headers: error('unavailable', TEXT.unavailable(r.protocol), 1000) };
  }
  if (r.method !== 'plain' && r.method !== 'login') {
    // APOP, CRAM-MD5, EXTERNAL: no password to replay, so no verdict to count.
    return { verdict: 'fail', headers: error('failed', TEXT.failed(r.protocol), 1000) };
  }
  const sessionId = newSessionId();
  const attemptLog = log.child({ mode: 'nginx', session: sessionId, ip: r.clientIp, protocol: r.protocol, attempt: r.attempt });
  const gen = authAttempt(deps, attemptLog, {
    backend,
    protocol: PROTOCOLS[r.protocol],
    clientIp: r.clientIp,
    credentials: { mechanism: 'PLAIN', user: r.user, password: r.pass },
    context: { tag: 'a1', helo: r.helo, hostname: os.hostname(), client: { ip: r.clientIp, port: 0, localIp: local.ip, localPort: local.port, sessionId } },
    deferTarpit: true,
  });
  let step = await gen.next();
  // Only a token mechanism meets a challenge; nginx has none to answer it with.
  while (!step.done) step = await gen.next(null);
  return answerOutcome(step.value, r.protocol, error);
}

function answerOutcome(o: AuthOutcome, p: ProtocolName, error: (kind: keyof typeof SMTP_CODE, text: string, waitMs: number) => NginxAnswer): { verdict: NginxVerdict; headers: NginxAnswer } {
  switch (o.kind) {
    case 'ok': {
      // The verdict is known: end this session; nginx logs in to the same server itself.
      const ip = canonicalIp(o.socket.remoteAddress) ?? o.socket.remoteAddress ?? '';
      const port = String(o.socket.remotePort ?? '');
      o.socket.on('error', () => undefined);
      o.socket.setTimeout(2_000, () => o.socket.destroy());
      o.socket.end(GOODBYE[p]);
      return { verdict: 'allow', headers: { 'Auth-Status': 'OK', 'Auth-Server': ip, 'Auth-Port': port } };
    }
    case 'limited':
      return { verdict: 'refuse', headers: error('limited', TEXT.limited(p, o.retryAfterSec), o.retryAfterSec * 1000) };
    case 'rejected':
    case 'invalid-user':
      return { verdict: 'fail', headers: error('failed', TEXT.failed(p), o.kind === 'rejected' ? (o.tarpitMs ?? 0) : 0) };
    case 'unavailable':
      return { verdict: 'unavailable', headers: error('unavailable', TEXT.unavailable(p), 1000) };
  }
}
