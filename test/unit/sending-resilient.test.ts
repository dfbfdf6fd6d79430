// Sending counts behind the resilient wrapper, with a scripted primary (faults a healthy Redis
// will not produce on demand): while it fails or hangs, peeks and adds go to the local fallback
// whatever onError says (a store outage never blocks mail), the outage is logged once; a reset
// reaches both; back up, the primary answers again.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { ResilientStore } from '../../src/stores/resilient.js';
import type { SendingBounds } from '../../src/stores/store.js';
import { captureLogger } from '../helpers/log-capture.js';

const b: SendingBounds = { atMs: 1_000, windowMs: 60_000, knownTtlMs: 600_000, knownCap: 10 };
const at = { atMs: 1_000, knownTtlMs: 600_000 };

function make() {
  const primary = new MemoryStore(new ManualClock());
  const local = new MemoryStore(new ManualClock());
  const state = { mode: 'up' as 'up' | 'error' | 'hang' };
  const gate = <T>(f: () => Promise<T>): Promise<T> => (state.mode === 'up' ? f() : state.mode === 'error' ? Promise.reject(new Error('ECONNREFUSED')) : new Promise<T>(() => undefined));
  const scripted = Object.assign(Object.create(primary) as MemoryStore, {
    sendingPeek: (...a: Parameters<MemoryStore['sendingPeek']>) => gate(() => primary.sendingPeek(...a)),
    sendingAdd: (...a: Parameters<MemoryStore['sendingAdd']>) => gate(() => primary.sendingAdd(...a)),
    sendingReset: (...a: Parameters<MemoryStore['sendingReset']>) => gate(() => primary.sendingReset(...a)),
  });
  const { logger, captured } = captureLogger();
  // onError deny: logins would be refused, sending still falls back to local counts.
  return { primary, local, state, captured, store: new ResilientStore(scripted, local, 'deny', 30, logger) };
}

describe('sending counts behind the resilient wrapper', () => {
  it('go to the primary while it answers, to the local fallback while it fails or hangs, logged once', async () => {
    const t = make();
    expect(await t.store.sendingAdd('c', 'k', ['p'], b)).toMatchObject({ messages: 1, added: 1 });
    expect((await t.primary.sendingPeek('c', 'k', ['p'], at)).messages).toBe(1);
    t.state.mode = 'error';
    expect(await t.store.sendingAdd('c', 'k', ['p'], b)).toMatchObject({ messages: 1, added: 1 });
    t.state.mode = 'hang';
    expect(await t.store.sendingAdd('c', 'k', ['p', 'q'], b)).toMatchObject({ messages: 2, added: 1 });
    expect(await t.store.sendingPeek('c', 'k', ['q'], at)).toMatchObject({ messages: 2, known: [true] });
    expect((await t.primary.sendingPeek('c', 'k', [], at)).messages).toBe(1);
    expect(t.captured.lines.filter((l) => l.event === 'store.fallback')).toHaveLength(1);
    expect(t.store.health).toMatchObject({ up: false, outages: 1 });
    t.state.mode = 'up';
    await t.store.sendingReset('c', 'k');
    expect(await t.local.sendingPeek('c', 'k', ['p'], at)).toMatchObject({ messages: 0, known: [false] });
    expect(await t.store.sendingPeek('c', 'k', ['p'], at)).toMatchObject({ messages: 0, known: [false] });
    expect(t.store.health.up).toBe(true);
  });
});
