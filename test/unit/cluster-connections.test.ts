// limits.connections across workers (src/cluster/shared-connections.ts in the primary,
// remote-connections.ts in each worker): perIp and total exact over all workers, the oldest
// connection still before login evicted at the total and never a spliced one, releases that
// race admissions, a dead worker's slots freed, and the worker's own limits while the primary
// does not answer.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Channel } from '../../src/cluster/channel.js';
import type { WorkerChannel } from '../../src/cluster/ipc-store.js';
import { RemoteConnections } from '../../src/cluster/remote-connections.js';
import { MAX_EVICTION_ASKS, SharedConnections, type WorkerAsks } from '../../src/cluster/shared-connections.js';
import type { WorkerLink } from '../../src/cluster/store-host.js';
import type { TrackedConnection } from '../../src/server/connections.js';
import { captureLogger } from '../helpers/log-capture.js';
import { portPair } from '../helpers/ipc-pair.js';
import { until } from '../helpers/until.js';

describe('SharedConnections (the primary)', () => {
  const evictable = new Set<string>();
  const asked: string[] = [];
  /** Two workers that hold nothing on their shares: every connection is granted here. */
  const asks = (over: Partial<WorkerAsks> = {}): WorkerAsks => ({
    central: async () => 0,
    oldest: async () => null,
    evictOwn: async () => false,
    evict: async (worker, cid) => {
      asked.push(`${worker}:${cid}`);
      return evictable.delete(`${worker}:${cid}`);
    },
    local: () => undefined,
    ...over,
  });
  /** The primary of workers 1 and 2, their counts told as the worker does (a note). */
  const tracker = (limits = { perIp: 3, total: 5 }, a = asks(), now?: () => number) => {
    const told = { ...a, central: async (w: number, key: string | null) => (t.told(w, key, await a.central(w, key)), 0) };
    const t: SharedConnections = new SharedConnections(() => limits, 2, () => [1, 2], told, now);
    return t;
  };

  it('perIp counts one address over every worker', async () => {
    const t = tracker();
    expect(await t.admit(1, 1, '10.0.0.1')).toBe('ok');
    expect(await t.admit(2, 1, '10.0.0.1')).toBe('ok');
    expect(await t.admit(2, 2, '10.0.0.1')).toBe('ok');
    expect(await t.admit(1, 2, '10.0.0.1')).toBe('per-ip');
    t.release(2, 1);
    expect(await t.admit(1, 3, '10.0.0.1')).toBe('ok');
    expect(t.countFor('10.0.0.1')).toBe(3);
  });

  it('counts a worker it has not heard from at its full share: never too few', async () => {
    // Worker 1 holds its share of 1; worker 2 does not answer, so may hold its share too.
    const t = tracker({ perIp: 3, total: 100 }, asks({ central: async (w) => (w === 1 ? 1 : Promise.reject(new Error('stalled'))) }));
    expect(await t.admit(1, 1, 'a')).toBe('ok'); // 0 granted + a share of 1 each
    expect(await t.admit(1, 2, 'a')).toBe('per-ip'); // 1 granted + 1 (worker 1 said) + 1 (worker 2's share)
    expect(t.held('a', 3)).toBe(3);
  });

  it('adds what the workers say they hold on their shares, and their releases', async () => {
    const own = new Map([[1, 1], [2, 1]]);
    const local: string[] = [];
    const t = tracker({ perIp: 3, total: 100 }, asks({ central: async (w) => own.get(w)!, local: (w, key) => void local.push(`${w}:${key}`) }));
    const onTotalShare = { ip: false, total: true }; // the workers had room in their totals
    expect(await t.admit(1, 1, 'a', onTotalShare)).toBe('ok'); // 0 granted + 1 + 1 on shares
    expect(await t.admit(2, 1, 'a', onTotalShare)).toBe('per-ip'); // asked: 1 + 1 + 1
    expect(local).toEqual([]); // full: stays exact
    own.set(2, 0);
    t.releaseOwn(2, 'a', { ip: true, total: false }); // worker 2's one left: room, and 1 granted beside two full shares fits
    expect(local.sort()).toEqual(['1:a', '2:a']); // back to shares everywhere
    expect(await t.admit(2, 2, 'a', onTotalShare)).toBe('ok'); // asked again: 1 + 1 + 0
    t.release(1, 1);
    t.release(2, 2);
    expect(t.central).toBe(0);
  });

  it('at the total, the oldest connection not logged in goes (its worker asked), never a spliced one', async () => {
    asked.length = 0;
    const t = tracker({ perIp: 100, total: 3 });
    await t.admit(1, 1, 'a');
    await t.admit(2, 1, 'b');
    await t.admit(1, 2, 'c');
    t.spliced(1, 1);
    evictable.add('2:1');
    expect(await t.admit(2, 2, 'd')).toBe('ok');
    expect(asked).toEqual(['2:1']);
    expect(t.size).toBe(3);
    expect(t.countFor('b')).toBe(0);
  });

  it("at the total, a worker's own oldest connection goes when it is the oldest", async () => {
    asked.length = 0;
    const order: string[] = [];
    let now = 100;
    const a = asks({
      central: async (w, key) => (key === null && w === 2 ? 1 : 0),
      oldest: async (w) => (w === 2 ? 50 : null), // admitted on worker 2's share before any here
      evictOwn: async (w) => (order.push(`own:${w}`), t.releaseOwn(w, 'z', { ip: false, total: true }), true),
    });
    const t = tracker({ perIp: 100, total: 3 }, a, () => now++);
    await t.admit(1, 1, 'a');
    await t.admit(1, 2, 'b');
    expect(await t.admit(1, 3, 'c')).toBe('ok');
    expect(order).toEqual(['own:2']);
    expect(asked).toEqual([]);
  });

  it('asks the next oldest when one is in a login just now; refuses when none goes', async () => {
    asked.length = 0;
    const t = tracker({ perIp: 100, total: 2 });
    await t.admit(1, 1, 'a');
    await t.admit(2, 1, 'b');
    expect(await t.admit(1, 9, 'c')).toBe('total'); // neither is evictable
    expect(asked).toEqual(['1:1', '2:1']);
    evictable.add('2:1');
    expect(await t.admit(1, 10, 'c')).toBe('ok');
  });

  it(`asks at most ${MAX_EVICTION_ASKS} connections for one admission`, async () => {
    asked.length = 0;
    const t = tracker({ perIp: 1000, total: 40 });
    for (let i = 1; i <= 40; i++) await t.admit(1, i, `ip${i}`);
    evictable.add('1:40'); // the youngest: past the bound
    expect(await t.admit(2, 1, 'x')).toBe('total');
    expect(asked).toHaveLength(MAX_EVICTION_ASKS);
  });

  it('a connection released while its admission waits for room is not counted', async () => {
    let answer!: (gone: boolean) => void;
    const t = tracker({ perIp: 10, total: 1 }, asks({ evict: () => new Promise((r) => (answer = r)) }));
    await t.admit(1, 1, 'a');
    const waiting = t.admit(2, 1, 'b');
    await until(() => answer !== undefined, 'the eviction asked');
    t.release(2, 1); // the client left before the answer
    answer(true);
    expect(await waiting).toBe('total');
    expect(t.size).toBe(0);
    expect(t.countFor('b')).toBe(0);
  });

  it("a worker's exit frees its connections", async () => {
    const t = tracker();
    await t.admit(1, 1, 'a');
    await t.admit(2, 1, 'a');
    t.dropWorker(1);
    expect(t.size).toBe(1);
    expect(t.countFor('a')).toBe(1);
  });
});

/** A session as the tracker sees it. */
function conn(clientKey: string): TrackedConnection & { evicted: boolean; evictable: boolean } {
  const c = { clientKey, evictable: true, evicted: false, evict: () => void (c.evicted = true) };
  return c;
}

function workers(limits = { perIp: 2, total: 100 }, timeoutMs = 1000, n = 2) {
  const links: WorkerLink[] = [];
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const primary = new SharedConnections(() => limits, n, () => ids, {
    central: (w, key) => links[w - 1]!.call('conn.central', { key }, 1000),
    oldest: (w) => links[w - 1]!.call('conn.oldest', null, 1000),
    evictOwn: (w) => links[w - 1]!.call('conn.evict-own', null, 1000),
    evict: (w, cid) => links[w - 1]!.call('evict', { cid }, 1000),
    local: (w, key) => links[w - 1]!.notify('conn.local', { key }),
  });
  const sides = ids.map((id) => {
    const p = portPair();
    const link: WorkerLink = new Channel(p.b, `worker ${id}`);
    link.handle('conn.admit', ({ cid, key, share }) => primary.admit(id, cid, key, share));
    link.on('conn.release', ({ cid }) => primary.release(id, cid));
    link.on('conn.own-release', ({ key, ip, total }) => primary.releaseOwn(id, key, { ip, total }));
    link.on('conn.held', ({ key, n }) => primary.told(id, key, n));
    link.on('conn.held-all', (report) => primary.centralAll(id, report));
    link.on('conn.spliced', ({ cid }) => primary.spliced(id, cid));
    links.push(link);
    const { logger, captured } = captureLogger();
    const channel: WorkerChannel = new Channel(p.a, 'the primary');
    return { p, remote: new RemoteConnections(channel, () => limits, n, timeoutMs, logger), captured };
  });
  return { primary, sides, links };
}

/** Every message in flight delivered (the pair delivers on later turns; no clock involved). */
async function quiet(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

describe('RemoteConnections (a worker) with the primary', () => {
  it('admits and releases within its share without a message', async () => {
    const { sides } = workers({ perIp: 4, total: 100 });
    const { p, remote } = sides[0]!;
    const cs = [conn('10.0.0.1'), conn('10.0.0.1'), conn('10.0.0.2')];
    for (const c of cs) expect(await remote.admit(c)).toBe('ok');
    cs.forEach((c) => remote.release(c));
    await quiet();
    expect(p.sent).toEqual({ a: 0, b: 0 });
    expect(remote.ownSize).toBe(0);
  });

  it('perIp holds over two workers; a release frees the slot in the primary', async () => {
    const { primary, sides } = workers();
    const [a, b] = [sides[0]!.remote, sides[1]!.remote];
    const c1 = conn('10.0.0.1');
    expect(await a.admit(c1)).toBe('ok'); // a's share of 1
    expect(await b.admit(conn('10.0.0.1'))).toBe('ok'); // b's share of 1
    expect(await b.admit(conn('10.0.0.1'))).toBe('per-ip'); // the primary asks both: 2 of 2
    a.release(c1); // the address was central: the primary hears of it, and hands it back to shares
    await quiet();
    expect(primary.central).toBe(0);
    expect(await a.admit(conn('10.0.0.1'))).toBe('ok');
    expect(await a.admit(conn('10.0.0.1'))).toBe('per-ip');
  });

  it('an address whose connections all reach one worker still gets its whole limit', async () => {
    const { primary, sides } = workers({ perIp: 5, total: 100 }, 1000, 3);
    const a = sides[0]!.remote;
    const got = [];
    for (let i = 0; i < 7; i++) got.push(await a.admit(conn('10.0.0.9')));
    expect(got).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'per-ip', 'per-ip']);
    expect(primary.countFor('10.0.0.9') + a.ownSize).toBe(5);
  });

  it('the primary evicts a pre-auth connection of another worker at the total, and never a spliced one', async () => {
    const { sides } = workers({ perIp: 10, total: 2 });
    const [a, b] = [sides[0]!.remote, sides[1]!.remote];
    const old = conn('1.1.1.1');
    const loggedIn = conn('2.2.2.2');
    await a.admit(loggedIn);
    loggedIn.evictable = false;
    a.spliced(loggedIn);
    await a.admit(old);
    expect(await b.admit(conn('3.3.3.3'))).toBe('ok');
    expect(old.evicted).toBe(true);
    expect(loggedIn.evicted).toBe(false);
  });

  it("evicts a worker's own oldest pre-auth connection at the total", async () => {
    const { sides } = workers({ perIp: 10, total: 2 });
    const [a, b] = [sides[0]!.remote, sides[1]!.remote];
    const old = conn('1.1.1.1');
    await a.admit(old); // on a's share
    await b.admit(conn('2.2.2.2')); // on b's share
    const young = conn('3.3.3.3');
    expect(await b.admit(young)).toBe('ok');
    expect(old.evicted).toBe(true);
    expect(young.evicted).toBe(false);
  });

  it('a reload that lowers the limits: every worker reports what it holds and asks from then on', async () => {
    const limits = { perIp: 4, total: 100 };
    const { primary, sides, links } = workers(limits);
    const [a, b] = [sides[0]!.remote, sides[1]!.remote];
    const held = [conn('7.7.7.7'), conn('7.7.7.7'), conn('7.7.7.7')];
    await a.admit(held[0]!);
    await a.admit(held[1]!);
    await b.admit(held[2]!);
    for (const link of links) await link.call('conn.central-all', null, 1000);
    limits.perIp = 2; // 3 open: a's old share of 2 is no bound any more
    expect(await a.admit(conn('7.7.7.7'))).toBe('per-ip');
    expect(await b.admit(conn('7.7.7.7'))).toBe('per-ip');
    a.release(held[0]!);
    expect(await b.admit(conn('7.7.7.7'))).toBe('per-ip'); // 2 still open
    b.release(held[2]!);
    await quiet();
    expect(await b.admit(conn('7.7.7.7'))).toBe('ok');
    expect(sides[1]!.p.sent.a).toBeGreaterThan(0); // asked: no share any more
  });

  it('while the primary does not answer: this worker holds the limits alone, logged once, until it answers again', async () => {
    const { sides, primary } = workers({ perIp: 2, total: 100 }, 20);
    const { p, remote, captured } = sides[0]!;
    p.stall('a', true);
    const local = [conn('9.9.9.9'), conn('9.9.9.9'), conn('9.9.9.9')];
    const answers = [];
    for (const c of local) answers.push(await remote.admit(c));
    expect(answers).toEqual(['ok', 'ok', 'per-ip']); // its share, then its own fallback
    expect(captured.lines.filter((l) => l.event === 'worker.ipc-fallback')).toHaveLength(1);
    remote.release(local[1]!); // admitted in the fallback: released there
    p.stall('a', false);
    // The late admissions are released by the notes that followed them.
    await quiet();
    expect(primary.size).toBe(0);
    expect(await remote.admit(conn('8.8.8.8'))).toBe('ok'); // its share
    expect(await remote.admit(conn('8.8.8.8'))).toBe('ok'); // asked
    expect(captured.lines.filter((l) => l.event === 'worker.ipc-recovered')).toHaveLength(1);
  });
});

describe('shares and the primary under any interleaving (property)', () => {
  type Op = { kind: 'burst'; admits: [worker: number, ip: number][] } | { kind: 'release'; pick: number } | { kind: 'churn'; admits: [worker: number, ip: number][]; leave: number };
  const op = (workers: number) =>
    fc.oneof(
      fc.record({ kind: fc.constant('churn' as const), admits: fc.array(fc.tuple(fc.nat(workers - 1), fc.nat(2)), { minLength: 1, maxLength: 8 }), leave: fc.nat(4) }),
      fc.record({ kind: fc.constant('burst' as const), admits: fc.array(fc.tuple(fc.nat(workers - 1), fc.nat(2)), { minLength: 1, maxLength: 8 }) }),
      fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
    );
  it('never more than perIp or total open, and nobody refused below them', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 3 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 9 }), fc.array(op(n), { maxLength: 12 }))),
        async ([n, perIp, total, ops]) => {
          const { sides } = workers({ perIp, total }, 1000, n);
          const open: { w: number; c: ReturnType<typeof conn> }[] = [];
          const count = (ip: string) => open.filter((o) => o.c.clientKey === ip).length;
          for (const o of ops as Op[]) {
            if (o.kind === 'churn') {
              // Leaving and arriving at once: only the bounds can be checked at each step.
              const leaving = open.splice(0, o.leave);
              const arriving = o.admits.map(async ([w, ip]) => {
                const t = { w, c: conn(`ip${ip}`) };
                t.c.evictable = false;
                const a = await sides[w]!.remote.admit(t.c);
                if (a === 'ok') open.push(t);
                expect(count(t.c.clientKey)).toBeLessThanOrEqual(perIp + leaving.filter((l) => l.c.clientKey === t.c.clientKey).length);
                expect(open.length).toBeLessThanOrEqual(total + leaving.length);
              });
              for (const l of leaving) {
                await new Promise((r) => setImmediate(r));
                sides[l.w]!.remote.release(l.c);
              }
              await Promise.all(arriving);
              await quiet();
              continue;
            }
            if (o.kind === 'release') {
              if (!open.length) continue;
              const [gone] = open.splice(o.pick % open.length, 1);
              sides[gone!.w]!.remote.release(gone!.c);
              await quiet(); // a release still on its way to the primary counts there (as before shares)
              continue;
            }
            // A burst: every admission at once, on its worker; nothing leaves meanwhile.
            const before = new Map([0, 1, 2].map((ip) => [`ip${ip}`, count(`ip${ip}`)]));
            const totalBefore = open.length;
            const tries = o.admits.map(([w, ip]) => ({ w, c: conn(`ip${ip}`) }));
            for (const t of tries) t.c.evictable = false; // at the total: refused, not evicting
            // Each admission counts the moment its answer comes: the limits hold at every step.
            const answers = await Promise.all(
              tries.map(async (t) => {
                const a = await sides[t.w]!.remote.admit(t.c);
                if (a === 'ok') open.push(t);
                expect(count(t.c.clientKey)).toBeLessThanOrEqual(perIp);
                expect(open.length).toBeLessThanOrEqual(total);
                return a;
              }),
            );
            // Refused only when full: its address at perIp, or everyone at the total. Within one
            // burst a slot held on a share by an admission the other limit then refuses may
            // turn another away meanwhile (as a reservation does in a store): only then.
            const refusedFor = new Set(answers.filter((a) => a !== 'ok'));
            tries.forEach((t, i) => {
              if (answers[i] === 'per-ip' && !refusedFor.has('total')) expect(count(t.c.clientKey)).toBe(perIp);
              if (answers[i] === 'total' && !refusedFor.has('per-ip')) expect(open.length).toBe(total);
            });
            expect(totalBefore).toBeLessThanOrEqual(open.length);
            await quiet();
          }
        },
      ),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150) },
    );
  });
});
