// The auth path without sockets: a scripted backend replay, the memory store on a ManualClock,
// a captured log. Checks the one verdict table (what limits count, what the metric and the
// log say, what the machine is told), the challenge relay as a coroutine, pool failover and
// the wiping of credentials.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BackendPools } from '../../src/backend/pool.js';
import type { BackendLoginResult, BackendReplay } from '../../src/backend/types.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import type { Tarpit } from '../../src/limits/tarpit.js';
import { createLogger } from '../../src/logging/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { imap } from '../../src/protocols/imap/index.js';
import type { Credentials } from '../../src/protocols/sasl.js';
import { authAttempt, type AuthOutcome, type AuthRequest } from '../../src/server/auth-path.js';
import { MemoryStore } from '../../src/stores/memory.js';

type Script = (server: { host: string; port: number }, c: Credentials) => BackendLoginResult | Promise<BackendLoginResult>;

function rig(script: Script, limits: unknown = {}, servers = ['127.0.0.1:1143']) {
  const cfg = parseConfig({
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }],
    backends: { b: { servers } },
    limits,
  });
  const clock = new ManualClock();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('debug', new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(JSON.parse(chunk.toString())), cb()) }));
  const metrics = createMetrics({ defaultMetrics: false });
  const waits: number[] = [];
  const tarpit = { wait: async (ms: number) => void waits.push(ms) } as unknown as Tarpit;
  const seen: { server: string; user: string; password: string }[] = [];
  const replay: BackendReplay = {
    login: async (server, c) => {
      seen.push({ server: `${server.host}:${server.port}`, user: c.user.toString(), password: c.password.toString() });
      return script(server, c);
    },
    probeCapabilities: async () => [],
  };
  const deps = {
    policy: new Policy(cfg.limits, new MemoryStore(clock), new KeyBuilder('test-secret-0123456789'), clock),
    clock,
    metrics,
    tarpit,
    pools: new BackendPools(() => cfg.backends, log),
  };
  const request = (user: string, password: string, ip = '192.0.2.1'): AuthRequest => ({
    backend: cfg.listeners[0]!.backend,
    protocol: { protocol: imap, replay },
    clientIp: ip,
    credentials: { mechanism: 'IMAP-LOGIN', user: Buffer.from(user), password: Buffer.from(password) },
    context: { tag: 'a1', hostname: 'mx.test', client: { ip, port: 40000, localIp: '127.0.0.1', localPort: 143, sessionId: 's1' } },
  });
  /** Runs one attempt to its end; challenges are answered by `answer` (null: the client left). */
  const attempt = async (req: AuthRequest, answer: (challenge: string) => string | null = () => null): Promise<AuthOutcome> => {
    const a = authAttempt(deps, log, req);
    let step = await a.next();
    while (!step.done) step = await a.next(answer(step.value.relay));
    return step.value;
  };
  const outcomes = async () => Object.fromEntries((await metrics.loginAttempts.get()).values.map((v) => [v.labels.outcome, v.value]));
  return { deps, lines, waits, seen, request, attempt, outcomes, clock };
}

const REPLY = Buffer.from('a1 NO [AUTHENTICATIONFAILED] nope\r\n');
const rejected: Script = () => ({ kind: 'rejected', clientReply: REPLY });

describe('auth path', () => {
  it('a user name with a control character never reaches the backend or the limits', async () => {
    const r = rig(rejected);
    expect(await r.attempt(r.request('al\x00ice', 'pw'))).toEqual({ kind: 'invalid-user' });
    expect(r.seen).toEqual([]);
    expect(await r.outcomes()).toEqual({ invalid: 1 });
    expect(r.lines.at(-1)).toMatchObject({ event: 'auth.attempt', outcome: 'invalid', reason: 'control character' });
  });

  it('a rejection counts as a failure: the backend reply goes to the client, the rule refuses at its limit without asking the backend', async () => {
    const r = rig(rejected, { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 2, window: '10m' }] });
    expect(await r.attempt(r.request('alice', 'wrong1'))).toEqual({ kind: 'rejected', reply: REPLY });
    expect(await r.attempt(r.request('alice', 'wrong2'))).toEqual({ kind: 'rejected', reply: REPLY });
    expect(await r.attempt(r.request('alice', 'wrong3'))).toEqual({ kind: 'limited', retryAfterSec: 600 });
    expect(r.seen).toHaveLength(2);
    expect(await r.outcomes()).toEqual({ fail: 2, limited: 1 });
    expect(r.lines.at(-1)).toMatchObject({ outcome: 'limited', rule: 'ip-failures', count: 2 });
    // The window is the store's, on the injected clock: once it passes, the backend is asked again.
    r.clock.advance(600_000);
    expect((await r.attempt(r.request('alice', 'wrong4'))).kind).toBe('rejected');
  });

  it('a locked mailbox (POP3 [IN-USE]) is a success for the limits: the client hears the backend, no failure is counted', async () => {
    const busy = Buffer.from('-ERR [IN-USE] locked\r\n');
    const r = rig(() => ({ kind: 'locked', clientReply: busy }), { rules: [{ name: 'f', key: 'ip', count: 'failures', limit: 1, window: '10m' }] });
    for (let i = 0; i < 3; i++) expect(await r.attempt(r.request('alice', 'right'))).toEqual({ kind: 'unavailable', reply: busy });
    expect(await r.outcomes()).toEqual({ locked: 3 });
    expect(r.lines.at(-1)).toMatchObject({ outcome: 'locked', msg: 'login ok, but the backend cannot open the mailbox now' });
  });

  it('a backend that cannot answer is nobody\'s failure: temporary failure, warn line with the error, backend_up 0', async () => {
    const r = rig(() => ({ kind: 'unavailable', error: 'backend answered 454 to AUTH' }), { rules: [{ name: 'f', key: 'ip', count: 'failures', limit: 1, window: '10m' }] });
    for (let i = 0; i < 2; i++) expect(await r.attempt(r.request('alice', 'pw'))).toEqual({ kind: 'unavailable' });
    expect(await r.outcomes()).toEqual({ 'backend-error': 2 });
    expect(r.lines.at(-1)).toMatchObject({ level: 40, outcome: 'backend-error', error: 'backend answered 454 to AUTH' });
    expect((await r.deps.metrics.backendUp.get()).values[0]?.value).toBe(0);
  });

  it('a success hands the connection over and makes the (user, network) pair known-good for user rules', async () => {
    const ok: BackendLoginResult = { kind: 'ok', socket: {} as never, clientReply: Buffer.from('a1 OK\r\n'), leftover: Buffer.alloc(0) };
    let next: BackendLoginResult = ok;
    const r = rig(() => next, { knownGood: { ttl: '14d' }, rules: [{ name: 'u', key: 'user', count: 'failures', limit: 1, window: '1h' }] });
    expect(await r.attempt(r.request('alice', 'right'))).toEqual({ ...ok, user: 'alice' });
    next = { kind: 'rejected', clientReply: REPLY };
    await r.attempt(r.request('alice', 'wrong', '198.51.100.7'));
    // The failure from elsewhere reached the user rule's limit; the known network still passes.
    expect((await r.attempt(r.request('alice', 'wrong2', '198.51.100.7'))).kind).toBe('limited');
    next = ok;
    expect(await r.attempt(r.request('alice', 'right', '192.0.2.99'))).toEqual({ ...ok, user: 'alice' });
    expect(r.lines.at(-1)).toMatchObject({ outcome: 'ok', knownGood: true });
  });

  it('an error challenge is yielded to the session and the client\'s answer resumed into the backend', async () => {
    const answers: (string | null)[] = [];
    const r = rig(() => ({
      kind: 'challenge',
      challenge: 'eyJzdGF0dXMiOiI0MDEifQ==',
      respond: async (response) => {
        answers.push(response);
        return { kind: 'rejected', clientReply: REPLY };
      },
    }));
    const relayed: string[] = [];
    const outcome = await r.attempt(r.request('alice', 'token'), (c) => (relayed.push(c), 'AQ=='));
    expect(relayed).toEqual(['eyJzdGF0dXMiOiI0MDEifQ==']);
    expect(answers).toEqual(['AQ==']);
    expect(outcome).toEqual({ kind: 'rejected', reply: REPLY });
    expect(r.lines.at(-1)).toMatchObject({ outcome: 'fail', challenged: true });
  });

  it('a failure on a rule with a delay is answered after the tarpit wait', async () => {
    const r = rig(rejected, { rules: [{ name: 'slow', key: 'ip', count: 'failures', limit: 10, window: '10m', delay: { base: '1s', max: '4s' } }] });
    for (let i = 0; i < 4; i++) await r.attempt(r.request('alice', `wrong${i}`));
    expect(r.waits).toEqual([1000, 2000, 4000, 4000]);
    expect(r.lines.at(-1)).toMatchObject({ tarpitMs: 4000 });
  });

  it('an unreachable server makes way for the next one in the pool; a server that answered does not', async () => {
    const r = rig((server) => (server.port === 1 ? { kind: 'unavailable', error: 'refused', unreachable: true } : { kind: 'rejected', clientReply: REPLY }), {}, ['127.0.0.1:1', '127.0.0.1:2']);
    expect((await r.attempt(r.request('alice', 'pw'))).kind).toBe('rejected');
    expect(r.seen.map((s) => s.server)).toEqual(['127.0.0.1:1', '127.0.0.1:2']);
    expect(r.deps.pools.healthy({ host: '127.0.0.1', port: 1 })).toBe(false);
    // Known down: tried last, so the next login goes straight to the healthy one.
    expect((await r.attempt(r.request('alice', 'pw'))).kind).toBe('rejected');
    expect(r.seen.map((s) => s.server)).toEqual(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:2']);
  });

  it('an exception that is not a MailgateError is a bug: logged at error with its stack, answered as unavailable, counted against no one', async () => {
    const r = rig(() => {
      throw new TypeError('cannot read properties of undefined');
    }, { rules: [{ name: 'f', key: 'ip', count: 'failures', limit: 1, window: '10m' }] });
    for (let i = 0; i < 2; i++) expect(await r.attempt(r.request('alice', 'pw'))).toEqual({ kind: 'unavailable' });
    const bug = r.lines.find((l) => l.event === 'auth.bug');
    expect(bug).toMatchObject({ level: 50 });
    expect(String(bug?.err)).toMatch(/^TypeError: cannot read properties of undefined\n\s+at /);
    expect(await r.outcomes()).toEqual({ 'backend-error': 2 });
  });

  it('credentials are wiped once the attempt ends, whatever its outcome', async () => {
    for (const script of [rejected, () => ({ kind: 'unavailable', error: 'x' }) as BackendLoginResult]) {
      const r = rig(script);
      const req = r.request('alice', 'secret');
      await r.attempt(req);
      expect(r.seen[0]).toMatchObject({ user: 'alice', password: 'secret' });
      expect([...req.credentials.user, ...req.credentials.password].every((b) => b === 0)).toBe(true);
    }
  });
});
