// nginx's auth_http without nginx: header parsing (NGX_ESCAPE_MAIL_AUTH undone to the bytes),
// and the answers that need no backend verdict: refusals by the limits (Auth-Wait capped,
// Auth-Error-Code for SMTP), a backend that cannot be reached, methods without a password.
// The login replay itself is exercised against real Dovecot and nginx in test/e2e.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BackendPools } from '../../src/backend/pool.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { Tarpit } from '../../src/limits/tarpit.js';
import { createLogger } from '../../src/logging/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { answerNginx, parseNginx, unescapeMailAuth, type NginxRequest } from '../../src/policy-server/nginx.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { freePorts } from '../helpers/ports.js';

describe('nginx auth_http requests', () => {
  it("undoes nginx's escaping of space, % and control characters, and keeps other bytes", () => {
    expect(unescapeMailAuth('p%20w%25d%0D%0A')).toEqual(Buffer.from('p w%d\r\n'));
    expect(unescapeMailAuth('100%')).toEqual(Buffer.from('100%'));
    expect(unescapeMailAuth('%zz%4')).toEqual(Buffer.from('%zz%4'));
    // UTF-8 arrives as raw bytes, which Node gives as latin1 characters.
    expect(unescapeMailAuth(Buffer.from('pässword', 'utf8').toString('latin1'))).toEqual(Buffer.from('pässword', 'utf8'));
  });

  it('parses what nginx sends and names what is missing', () => {
    const h = { 'auth-method': 'plain', 'auth-user': 'alice%20x', 'auth-pass': 'secret', 'auth-protocol': 'IMAP', 'auth-login-attempt': '2', 'client-ip': '::ffff:192.0.2.4' };
    expect(parseNginx(h)).toEqual({ protocol: 'imap', method: 'plain', user: Buffer.from('alice x'), pass: Buffer.from('secret'), clientIp: '192.0.2.4', attempt: 2, helo: undefined });
    expect(parseNginx({ ...h, 'auth-user': undefined })).toMatch(/^Auth-User/);
    expect(parseNginx({ ...h, 'auth-protocol': 'lmtp' })).toMatch(/^Auth-Protocol/);
    expect(parseNginx({ ...h, 'client-ip': '' })).toMatch(/^Client-IP/);
    expect(parseNginx({ ...h, 'auth-method': 'kerberos' })).toMatch(/^Auth-Method/);
    expect(parseNginx({ ...h, 'auth-method': 'none', 'auth-user': undefined, 'auth-protocol': 'smtp' })).toMatchObject({ method: 'none', user: Buffer.alloc(0) });
  });
});

describe('nginx auth_http answers', () => {
  async function rig() {
    const [closed] = await freePorts(1);
    const cfg = parseConfig({
      policyServer: { listen: '127.0.0.1:0', nginx: { imap: 'mail', smtp: 'mail' } },
      backends: { mail: { host: '127.0.0.1', port: closed!, connectTimeout: '1s' } },
      limits: { rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1, window: '1h', block: '1h' }] },
    });
    const clock = new ManualClock();
    const log = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
    const deps = { policy: new Policy(cfg.limits, new MemoryStore(clock), new KeyBuilder('test-secret-0123456789'), clock), clock, metrics: createMetrics({ defaultMetrics: false }), tarpit: new Tarpit(clock), pools: new BackendPools(() => cfg.backends, log) };
    const settings = { maxWaitMs: 2000, backend: (p: string) => cfg.policyServer!.nginx[p as 'imap'], firstServer: (b: string) => cfg.backends[b]?.servers[0] };
    const ask = (r: Partial<NginxRequest>) => answerNginx(deps, settings, log, { protocol: 'imap', method: 'plain', user: Buffer.from('alice'), pass: Buffer.from('pw'), clientIp: '192.0.2.1', attempt: 1, ...r }, { ip: '127.0.0.1', port: 9926 });
    return { ask, closed: closed! };
  }

  it('answers a backend that cannot be reached with a temporary failure, and a refusal by the limits with its retry time', async () => {
    const r = await rig();
    expect(await r.ask({})).toEqual({ verdict: 'unavailable', headers: { 'Auth-Status': '[UNAVAILABLE] Mail server temporarily unavailable; try again later.', 'Auth-Wait': '1' } });
    // The block is an hour: nginx holds the client maxWait (2 s), the text says the truth.
    expect(await r.ask({})).toEqual({ verdict: 'refuse', headers: { 'Auth-Status': '[UNAVAILABLE] Too many login attempts; try again in 3600 seconds.', 'Auth-Wait': '2' } });
    expect(await r.ask({ protocol: 'smtp' })).toEqual({
      verdict: 'refuse',
      headers: { 'Auth-Status': 'Too many login attempts; try again in 3600 seconds', 'Auth-Wait': '2', 'Auth-Error-Code': '454 4.7.0' },
    });
  });

  it('sends SMTP without AUTH to the backend unjudged, refuses methods it cannot replay, and names a protocol without a backend', async () => {
    const r = await rig();
    expect(await r.ask({ protocol: 'smtp', method: 'none', user: Buffer.alloc(0) })).toEqual({ verdict: 'allow', headers: { 'Auth-Status': 'OK', 'Auth-Server': '127.0.0.1', 'Auth-Port': String(r.closed) } });
    expect((await r.ask({ method: 'cram-md5' })).headers['Auth-Status']).toBe('[AUTHENTICATIONFAILED] Authentication failed.');
    expect(await r.ask({ protocol: 'pop3' })).toEqual({ verdict: 'unavailable', headers: { 'Auth-Status': '[SYS/TEMP] Mail server temporarily unavailable; try again later.', 'Auth-Wait': '1' } });
  });
});
