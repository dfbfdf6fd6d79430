// The smaller pieces of worker mode (src/cluster): how many workers `auto` means, what a reload
// cannot change, the restart backoff, block hints passed between processes, verdicts batched
// for the primary's attack mode, a reload in two phases (all workers or none).
import os from 'node:os';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Channel } from '../../src/cluster/channel.js';
import { restartNeeded, workerCount } from '../../src/cluster/primary.js';
import type { WorkerChannel } from '../../src/cluster/ipc-store.js';
import type { HintNote } from '../../src/cluster/protocol.js';
import { reloadWorkers } from '../../src/cluster/reload.js';
import { SharedHints } from '../../src/cluster/shared-hints.js';
import type { WorkerLink } from '../../src/cluster/store-host.js';
import { RESTART_BASE_MS, RESTART_MAX_MS, restartDelayMs } from '../../src/cluster/supervisor.js';
import { AttackModeRelay } from '../../src/cluster/worker.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { portPair } from '../helpers/ipc-pair.js';

const base = { listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: 1 } } };
const cfg = (over: Record<string, unknown> = {}) => parseConfig({ ...base, ...over }, {});

describe('workers and what needs a restart', () => {
  it('auto is one worker per core; a number is that number', () => {
    expect(workerCount(cfg())).toBe(os.availableParallelism());
    expect(workerCount(cfg({ workers: 3 }))).toBe(3);
    expect(workerCount(cfg({ workers: 1 }))).toBe(1);
  });

  it('a reload names workers, store.type, store settings and admin.listen as restart-only', () => {
    expect(restartNeeded(cfg({ workers: 2 }), cfg({ workers: 2, limits: { maxAuthAttempts: 5 } }))).toEqual([]);
    expect(restartNeeded(cfg({ workers: 2 }), cfg({ workers: 4 }))).toEqual(['workers']);
    const redis = { type: 'redis', redis: { url: 'redis://127.0.0.1:1' } };
    expect(restartNeeded(cfg(), cfg({ store: redis, limits: { keySecret: 'k'.repeat(16) } }))).toEqual(['store.type']);
    expect(restartNeeded(cfg({ admin: { listen: '127.0.0.1:1' } }), cfg({ admin: { listen: '127.0.0.1:2' } }))).toEqual(['admin.listen']);
  });
});

describe('restart backoff', () => {
  it('doubles from the base and stops at the cap', () => {
    expect([0, 1, 2, 3].map(restartDelayMs)).toEqual([RESTART_BASE_MS, 2 * RESTART_BASE_MS, 4 * RESTART_BASE_MS, 8 * RESTART_BASE_MS]);
    expect(restartDelayMs(20)).toBe(RESTART_MAX_MS);
    expect(restartDelayMs(10_000)).toBe(RESTART_MAX_MS);
  });
});

describe('SharedHints', () => {
  it('publishes what this process learns and drops, and applies what others publish without echoing it', () => {
    const clock = new ManualClock();
    const sent: HintNote[] = [];
    const hints = new SharedHints(clock, (n) => sent.push(n));
    hints.note('10.0.0.1', 60_000);
    hints.forget('10.0.0.1');
    expect(sent).toEqual([{ op: 'note', key: '10.0.0.1', forMs: 60_000 }, { op: 'forget', key: '10.0.0.1' }]);
    hints.apply({ op: 'note', key: '10.0.0.2', forMs: 1000 });
    expect(hints.has('10.0.0.2')).toBe(true);
    clock.advance(1001);
    expect(hints.has('10.0.0.2')).toBe(false);
    expect(sent).toHaveLength(2);
  });
});

describe('AttackModeRelay', () => {
  afterEach(() => void vi.useRealTimers());

  it('sends the backend verdicts to the primary in one note per batch', () => {
    vi.useFakeTimers();
    const notes: unknown[] = [];
    const relay = new AttackModeRelay({ notify: (op: string, args: unknown) => void notes.push([op, args]) } as never);
    for (let i = 0; i < 5; i++) relay.record('fail');
    relay.record('ok');
    expect(notes).toEqual([]);
    vi.runOnlyPendingTimers();
    expect(notes).toEqual([['verdicts', { ok: 1, fail: 5 }]]);
    vi.runOnlyPendingTimers();
    expect(notes).toHaveLength(1); // nothing new, nothing sent
  });
});

describe('reloadWorkers (two phases)', () => {
  /** A worker that answers prepare (or refuses it), commit and abort, and says what it did. */
  function worker(slot: number, prepare: 'ok' | 'refuse' | 'silent') {
    const p = portPair();
    const did: string[] = [];
    const w: WorkerChannel = new Channel(p.a, 'the primary');
    w.handle('prepare', () => {
      did.push('prepare');
      if (prepare === 'refuse') throw new Error('tls.cert: cannot read /etc/mailgate/cert.pem');
      return prepare === 'silent' ? new Promise<null>(() => undefined) : null;
    });
    w.handle('commit', () => (did.push('commit'), { addresses: {}, failed: [] }));
    w.handle('abort', () => (did.push('abort'), null));
    const link: WorkerLink = new Channel(p.b, `worker ${slot}`);
    return { slot, link, did };
  }

  it('commits in every worker once all have prepared', async () => {
    const ws = [worker(1, 'ok'), worker(2, 'ok')];
    expect(await reloadWorkers(ws, cfg(), 1000)).toEqual({ ok: true, reports: [{ addresses: {}, failed: [] }, { addresses: {}, failed: [] }] });
    expect(ws.map((w) => w.did)).toEqual([['prepare', 'commit'], ['prepare', 'commit']]);
  });

  it('one worker that cannot prepare, or does not answer: every worker drops what it prepared, none commits', async () => {
    const refused = [worker(1, 'ok'), worker(2, 'refuse')];
    expect(await reloadWorkers(refused, cfg(), 1000)).toEqual({ ok: false, slot: 2, error: 'worker 2: tls.cert: cannot read /etc/mailgate/cert.pem' });
    expect(refused.map((w) => w.did)).toEqual([['prepare', 'abort'], ['prepare', 'abort']]);
    const silent = [worker(1, 'silent'), worker(2, 'ok')];
    expect(await reloadWorkers(silent, cfg(), 30)).toMatchObject({ ok: false, slot: 1, error: 'worker 1 did not answer prepare within 30 ms' });
    expect(silent.map((w) => w.did)).toEqual([['prepare', 'abort'], ['prepare', 'abort']]);
  });
});
