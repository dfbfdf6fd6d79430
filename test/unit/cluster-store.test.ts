// The primary's memory store served to workers over IPC (src/cluster/ipc-store.ts, store-host.ts):
// the whole store contract holds through the channel (JSON both ways), two workers share one
// limit, a success's settle and history row are one message, and a primary that stops answering gives each call its deadline and then the
// resilient wrapper's logged local fallback: never a hang.
import { describe, expect, it } from 'vitest';
import { Channel } from '../../src/cluster/channel.js';
import { IpcStore, type WorkerChannel } from '../../src/cluster/ipc-store.js';
import { serveStore, type WorkerLink } from '../../src/cluster/store-host.js';
import { ManualClock } from '../../src/clock.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { ResilientStore } from '../../src/stores/resilient.js';
import type { RecordRow } from '../../src/stores/store.js';
import { storeContract } from '../contract/store-contract.js';
import { captureLogger } from '../helpers/log-capture.js';
import { portPair } from '../helpers/ipc-pair.js';

/** A worker's IpcStore linked to a primary serving `store`. */
function linked(store: MemoryStore, timeoutMs = 1000) {
  const p = portPair();
  const worker: WorkerChannel = new Channel(p.a, 'the primary');
  const primary: WorkerLink = new Channel(p.b, 'worker 1');
  serveStore(primary, store, captureLogger().logger);
  return { p, worker, ipc: new IpcStore(worker, timeoutMs) };
}

storeContract('memory, served over IPC', async () => {
  const clock = new ManualClock();
  const { ipc } = linked(new MemoryStore(clock));
  return { store: ipc, advance: async (ms) => clock.advance(ms) };
});

describe('the memory store over IPC', () => {
  const failures = { key: 'u:bob', kind: 'failures' as const, limit: 4, windowMs: 60_000, blockMs: 60_000 };

  it('two workers, one limit: 40 racing hits reserve exactly 4', async () => {
    const store = new MemoryStore(new ManualClock());
    const [a, b] = [linked(store).ipc, linked(store).ipc];
    const hits = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).hit([failures])));
    expect(hits.filter((h) => h.ok)).toHaveLength(4);
    await Promise.all([a.settle([failures], { failed: true, reserved: true }), b.settle([failures], { failed: true, reserved: true })]);
    expect(await a.peek(failures.key)).toMatchObject({ count: 2, inflight: 2 });
  });

  it('a settle whose counts nobody reads (a success) goes as a note: settled, and no reply', async () => {
    const { p, ipc } = linked(new MemoryStore(new ManualClock()));
    await ipc.hit([failures]);
    const replies = p.sent.b;
    expect(await ipc.settle([failures], { failed: false, reserved: true, countsUnread: true })).toEqual([0]);
    expect(await ipc.peek(failures.key)).toMatchObject({ count: 0, inflight: 0 }); // after the note
    expect(p.sent.b).toBe(replies + 1); // the peek's reply only
  });

  it("a success's history row travels with its settle note: one message, written by the primary after the settle", async () => {
    const clock = new ManualClock();
    const { p, ipc } = linked(new MemoryStore(clock));
    await ipc.hit([failures]);
    const sent = p.sent.a;
    const at = clock.now();
    const row: RecordRow = { key: 'lh:bob', field: '192.0.2.0/24|imap|ok', bounds: { atMs: at, ttlMs: 60_000, cap: 5 } };
    expect(await ipc.settle([failures], { failed: false, reserved: true, countsUnread: true, record: row })).toEqual([0]);
    expect(row.written).toBe(true);
    expect(await ipc.historyGet('lh:bob')).toEqual([{ field: row.field, count: 1, firstMs: at, lastMs: at }]);
    expect(p.sent.a).toBe(sent + 2); // the settle note, then the read's call
    expect(await ipc.peek(failures.key)).toMatchObject({ inflight: 0 });
  });

  it('a primary that stops answering: the call fails at its deadline, the wrapper falls back to local counters, logged once', async () => {
    const { p, ipc, worker } = linked(new MemoryStore(new ManualClock()), 20);
    const { logger: log, captured } = captureLogger();
    const lines = () => captured.lines;
    const store = new ResilientStore(ipc, new MemoryStore(new ManualClock()), 'local', 1000, log);
    expect(await store.hit([failures])).toMatchObject({ ok: true, route: 'primary' });
    p.stall('b', true);
    expect(await store.hit([failures])).toMatchObject({ ok: true, route: 'local' });
    expect(await store.hit([failures])).toMatchObject({ ok: true, route: 'local' });
    expect(store.health).toMatchObject({ up: false, fallbacks: 2, outages: 1 });
    expect(lines().filter((l) => l.event === 'store.fallback')).toEqual([expect.objectContaining({ error: 'the primary did not answer store.hit within 20 ms' })]);
    p.stall('b', false);
    expect(await store.hit([failures])).toMatchObject({ ok: true, route: 'primary' });
    expect(lines().filter((l) => l.event === 'store.recovered')).toHaveLength(1);
    expect(worker.inFlight).toBe(0);
  });
});
