// The resilient wrapper with a scripted failing primary (faults a healthy Redis will not
// produce on demand: a hang, an error, then recovery): each onError mode, settle routing,
// one log line per outage.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { ResilientStore, type OnError } from '../../src/stores/resilient.js';
import type { CounterSpec, LimitStore } from '../../src/stores/store.js';
import { captureLogger } from '../helpers/log-capture.js';

type Mode = 'up' | 'error' | 'hang';

/** A scripted primary: a MemoryStore that can be switched to fail or to never answer. */
function scripted() {
  const inner = new MemoryStore(new ManualClock());
  const state = { mode: 'up' as Mode };
  const gate = <T>(f: () => Promise<T>): Promise<T> =>
    state.mode === 'up' ? f() : state.mode === 'error' ? Promise.reject(new Error('ECONNREFUSED')) : new Promise<T>(() => undefined);
  const store: LimitStore = {
    hit: (s) => gate(() => inner.hit(s)),
    settle: (s, f) => gate(() => inner.settle(s, f)),
    peek: (k) => gate(() => inner.peek(k)),
    reset: (k) => gate(() => inner.reset(k)),
    block: (k, ms) => gate(() => inner.block(k, ms)),
    blocks: () => gate(() => inner.blocks()),
    close: () => inner.close(),
  };
  return { store, state, inner };
}

const attempts: CounterSpec = { key: 'ip', kind: 'attempts', limit: 2, windowMs: 60_000, blockMs: null };
const failures: CounterSpec = { key: 'f', kind: 'failures', limit: 2, windowMs: 60_000, blockMs: null };

function make(onError: OnError) {
  const p = scripted();
  const local = new MemoryStore(new ManualClock());
  const { logger, captured } = captureLogger();
  return { ...p, local, captured, store: new ResilientStore(p.store, local, onError, 30, logger) };
}

describe('ResilientStore', () => {
  it('local: a hanging primary is abandoned at the deadline and the same rule runs in memory', async () => {
    const { store, state, captured } = make('local');
    state.mode = 'hang';
    expect((await store.hit([attempts])).ok).toBe(true);
    expect((await store.hit([attempts])).ok).toBe(true);
    expect(await store.hit([attempts])).toMatchObject({ ok: false, count: 2 });
    expect(captured.lines.filter((l) => l.event === 'store.fallback')).toHaveLength(1);
    // Read through the interface, as main.ts does (metrics, /readyz): no downcast.
    const asStore: LimitStore = store;
    expect(asStore.health).toMatchObject({ up: false, fallbacks: 3, outages: 1 });
  });

  it('allow lets logins through; deny refuses them as a temporary failure', async () => {
    const allow = make('allow');
    allow.state.mode = 'error';
    for (let i = 0; i < 5; i++) expect((await allow.store.hit([attempts])).ok).toBe(true);
    const deny = make('deny');
    deny.state.mode = 'error';
    expect(await deny.store.hit([attempts])).toMatchObject({ ok: false, blocked: false, retryAfterMs: 60_000 });
  });

  it('settle goes where the hit was counted, and recovery is logged once', async () => {
    const { store, state, inner, local, captured } = make('local');
    state.mode = 'error';
    const r = await store.hit([failures]);
    expect(r).toMatchObject({ ok: true, route: 'local' });
    state.mode = 'up';
    await store.settle([failures], { failed: true, reserved: true }, r.ok ? r.route : undefined);
    expect((await local.peek('f')).count).toBe(1);
    expect((await inner.peek('f')).count).toBe(0);
    const r2 = await store.hit([failures]);
    expect(r2).toMatchObject({ ok: true, route: 'primary' });
    expect(captured.lines.filter((l) => l.event === 'store.recovered')).toHaveLength(1);
    expect(store.health.up).toBe(true);
  });
});
