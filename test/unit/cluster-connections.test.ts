// limits.connections across workers (src/cluster/shared-connections.ts in the primary,
// remote-connections.ts in each worker): perIp and total exact over all workers, the oldest
// connection still before login evicted at the total and never a spliced one, releases that
// race admissions, a dead worker's slots freed, and the worker's own limits while the primary
// does not answer.
import { describe, expect, it } from 'vitest';
import { Channel } from '../../src/cluster/channel.js';
import type { WorkerChannel } from '../../src/cluster/ipc-store.js';
import { RemoteConnections } from '../../src/cluster/remote-connections.js';
import { MAX_EVICTION_ASKS, SharedConnections } from '../../src/cluster/shared-connections.js';
import type { WorkerLink } from '../../src/cluster/store-host.js';
import type { TrackedConnection } from '../../src/server/connections.js';
import { captureLogger } from '../helpers/log-capture.js';
import { portPair } from '../helpers/ipc-pair.js';
import { until } from '../helpers/until.js';

describe('SharedConnections (the primary)', () => {
  const evictable = new Set<string>();
  const asked: string[] = [];
  const tracker = (limits = { perIp: 3, total: 5 }) =>
    new SharedConnections(
      () => limits,
      async (worker, cid) => {
        asked.push(`${worker}:${cid}`);
        return evictable.delete(`${worker}:${cid}`);
      },
    );

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
    const t = new SharedConnections(() => ({ perIp: 10, total: 1 }), () => new Promise((r) => (answer = r)));
    await t.admit(1, 1, 'a');
    const waiting = t.admit(2, 1, 'b');
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

function workers(limits = { perIp: 2, total: 100 }, timeoutMs = 1000) {
  const primary = new SharedConnections(() => limits, async (w, cid) => links[w - 1]!.call('evict', { cid }, 1000));
  const links: WorkerLink[] = [];
  const sides = [1, 2].map((id) => {
    const p = portPair();
    const link: WorkerLink = new Channel(p.b, `worker ${id}`);
    link.handle('conn.admit', ({ cid, key }) => primary.admit(id, cid, key));
    link.on('conn.release', ({ cid }) => primary.release(id, cid));
    link.on('conn.spliced', ({ cid }) => primary.spliced(id, cid));
    links.push(link);
    const { logger, captured } = captureLogger();
    const channel: WorkerChannel = new Channel(p.a, 'the primary');
    return { p, remote: new RemoteConnections(channel, () => limits, timeoutMs, logger), captured };
  });
  return { primary, sides };
}

describe('RemoteConnections (a worker) with the primary', () => {
  it('perIp holds over two workers; a release frees the slot in the primary', async () => {
    const { primary, sides } = workers();
    const [a, b] = [sides[0]!.remote, sides[1]!.remote];
    const c1 = conn('10.0.0.1');
    expect(await a.admit(c1)).toBe('ok');
    expect(await b.admit(conn('10.0.0.1'))).toBe('ok');
    expect(await b.admit(conn('10.0.0.1'))).toBe('per-ip');
    a.release(c1);
    await until(() => primary.countFor('10.0.0.1') === 1, 'the release in the primary');
    expect(await a.admit(conn('10.0.0.1'))).toBe('ok');
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

  it('while the primary does not answer: this worker holds the limits alone, logged once, until it answers again', async () => {
    const { sides, primary } = workers({ perIp: 2, total: 100 }, 20);
    const { p, remote, captured } = sides[0]!;
    p.stall('a', true);
    const local = [conn('9.9.9.9'), conn('9.9.9.9'), conn('9.9.9.9')];
    const answers = [];
    for (const c of local) answers.push(await remote.admit(c));
    expect(answers).toEqual(['ok', 'ok', 'per-ip']);
    expect(captured.lines.filter((l) => l.event === 'worker.ipc-fallback')).toHaveLength(1);
    remote.release(local[0]!); // admitted locally: released locally
    p.stall('a', false);
    // The late admissions are released by the notes that followed them.
    await until(() => p.sent.a === 6 && primary.size === 0, 'the held admissions and releases handled');
    await new Promise((r) => setImmediate(r));
    expect(primary.size).toBe(0);
    expect(await remote.admit(conn('8.8.8.8'))).toBe('ok');
    expect(captured.lines.filter((l) => l.event === 'worker.ipc-recovered')).toHaveLength(1);
  });
});
