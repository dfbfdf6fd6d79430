// The policy server's HTTP surface, started by startProxy from a config with a policy server
// and no listener: the API key, 400 for anything malformed or oversized, 404/405, Dovecot's
// answers as JSON, metrics and logs without secrets; nginx's answers that need no verdict
// (refusals, an unreachable backend, methods without a password). The bounded answer is shown
// with a store that never answers: a scripted fault (no real store hangs past its timeout).
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendPools } from '../../src/backend/pool.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { Tarpit } from '../../src/limits/tarpit.js';
import { createLogger } from '../../src/logging/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { answerNginx, type NginxRequest } from '../../src/policy-server/nginx.js';
import { PolicyServer } from '../../src/policy-server/server.js';
import { MemoryStore } from '../../src/stores/memory.js';
import type { LimitStore } from '../../src/stores/store.js';
import { captureLogger } from '../helpers/log-capture.js';
import { freePorts } from '../helpers/ports.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const KEY = 'policy-key-0123456789';
const body = (o: Record<string, unknown>) => JSON.stringify({ login: 'alice', pwhash: 'a1b2', remote: '192.0.2.7', device_id: '', protocol: 'imap', session_id: 'sess1', ...o });

describe('policy server over HTTP', () => {
  let proxy: TestProxy;
  let base: string;
  beforeAll(async () => {
    proxy = await startTestProxy({
      policyServer: { listen: '127.0.0.1:0', apiKey: KEY },
      limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m', block: '30m' }] },
    });
    base = `http://127.0.0.1:${proxy.policyServer!.port}`;
  });
  afterAll(() => proxy?.stop());

  const post = (command: string, data: string, key: string | null = KEY) =>
    fetch(`${base}/dovecot?command=${command}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) }, body: data });

  it('starts with no listener, and answers nothing without the API key', async () => {
    expect(proxy.listeners).toHaveLength(0);
    expect((await post('allow', body({}), null)).status).toBe(401);
    expect((await post('allow', body({}), 'wrong-key-0123456789')).status).toBe(401);
    expect((await fetch(`${base}/nginx`, { headers: { 'auth-protocol': 'imap', 'client-ip': '192.0.2.7', 'auth-user': 'a', 'auth-pass': 'b' } })).status).toBe(401);
  });

  it('answers a refusal with a negative status and a message after a reported failure', async () => {
    const allow = await post('allow', body({}));
    expect(allow.status).toBe(200);
    expect(await allow.json()).toEqual({ status: 0, msg: 'ok' });
    expect((await post('report', body({ success: false, policy_reject: false, tls: false }))).status).toBe(200);
    const refused = await (await post('allow', body({ session_id: 'sess2' }))).json();
    expect(refused.status).toBe(-1);
    expect(refused.msg).toMatch(/try again in \d+ seconds/);
  });

  it('answers 400 to malformed and oversized requests, 404 and 405 to wrong paths and methods', async () => {
    expect((await post('allow', '{not json')).status).toBe(400);
    expect((await post('allow', JSON.stringify({ login: 'a', remote: 'nowhere' }))).status).toBe(400);
    expect((await post('frobnicate', body({}))).status).toBe(400);
    expect((await post('allow', JSON.stringify({ login: 'a'.repeat(1 << 20), remote: '192.0.2.1' }))).status).toBe(400);
    const h = { 'x-api-key': KEY, 'auth-protocol': 'imap', 'client-ip': '192.0.2.7' };
    expect((await fetch(`${base}/nginx`, { headers: h })).status).toBe(400); // no Auth-User
    expect((await fetch(`${base}/nginx`, { headers: { ...h, 'auth-user': 'a', 'auth-protocol': 'lmtp' } })).status).toBe(400);
    expect((await fetch(`${base}/nginx`, { headers: { ...h, 'auth-user': 'a', 'client-ip': 'x' } })).status).toBe(400);
    expect((await fetch(`${base}/elsewhere`, { headers: { 'x-api-key': KEY } })).status).toBe(404);
    expect((await fetch(`${base}/dovecot?command=allow`, { headers: { 'x-api-key': KEY } })).status).toBe(405);
  });

  it('counts requests by mode and answer, and never logs the key, the password hash or a body', async () => {
    const metrics = await proxy.metrics.registry.metrics();
    expect(metrics).toMatch(/mailgate_policy_requests_total\{mode="dovecot",answer="refuse"\} [1-9]/);
    expect(metrics).toMatch(/mailgate_policy_requests_total\{mode="dovecot",answer="unauthorized"\} [1-9]/);
    expect(metrics).toMatch(/mailgate_policy_requests_total\{mode="dovecot",answer="bad-request"\} [1-9]/);
    const text = proxy.log.raw.join('\n');
    expect(text).not.toContain(KEY);
    expect(text).not.toContain('a1b2');
    expect(text).toContain('"mode":"dovecot"');
  });

  it('tells nginx that a protocol without a backend is temporarily unavailable', async () => {
    const res = await fetch(`${base}/nginx`, { headers: { 'x-api-key': KEY, 'auth-protocol': 'smtp', 'client-ip': '192.0.2.8', 'auth-user': 'alice', 'auth-pass': 'pw', 'auth-method': 'plain' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('auth-status')).toMatch(/Temporary authentication failure/);
    expect(res.headers.get('auth-error-code')).toBe('454 4.7.0');
    expect(res.headers.get('auth-wait')).toBe('1');
  });
});

describe('policy server with a store that never answers (scripted fault)', () => {
  it('answers Dovecot within policyServer.timeout and lets the login go on', async () => {
    const cfg = parseConfig({ policyServer: { listen: '127.0.0.1:0', timeout: '100ms' }, limits: { rules: [{ name: 'ip', key: 'ip', count: 'attempts', limit: 5, window: '1h' }] } });
    const clock = new ManualClock();
    const hanging = new MemoryStore(clock) as LimitStore;
    hanging.hit = () => new Promise(() => undefined);
    const { logger, captured } = captureLogger();
    const metrics = createMetrics({ defaultMetrics: false });
    const env = { policy: new Policy(cfg.limits, hanging, new KeyBuilder('k'.repeat(20)), clock), clock, metrics, tarpit: new Tarpit(clock), pools: new BackendPools(() => ({}), logger) };
    const server = new PolicyServer({ env: () => env, config: () => cfg.policyServer!, backend: () => undefined }, logger);
    const addr = await server.start();
    try {
      const res = await fetch(`http://127.0.0.1:${addr.port}/dovecot?command=allow`, { method: 'POST', body: body({}) });
      expect(await res.json()).toEqual({ status: 0, msg: 'ok' });
      expect(await metrics.registry.metrics()).toMatch(/mailgate_policy_requests_total\{mode="dovecot",answer="late"\} 1/);
      expect(captured.raw.join('\n')).toContain('"event":"policy.late"');
    } finally {
      await server.stop();
    }
  });
});

describe('nginx auth_http answers without a backend verdict', () => {
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
