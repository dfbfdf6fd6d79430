// The block cache (stores/block-cache.ts): it only ever refuses, only for blocks, never a
// spec this attempt could be exempt from, at most a minute on the instance's clock, and
// nothing while its channel is down; an unblock makes answers asked for before it stale.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { BLOCK_CACHE_MAX_TTL_MS, BlockCache } from '../../src/stores/block-cache.js';
import type { CounterSpec } from '../../src/stores/store.js';

const spec = (key: string, over: Partial<CounterSpec> = {}): CounterSpec => ({ key, kind: 'failures', limit: 5, windowMs: 60_000, blockMs: 600_000, ...over });

function live(max?: number): { cache: BlockCache; clock: ManualClock } {
  const clock = new ManualClock();
  const cache = new BlockCache(clock, BLOCK_CACHE_MAX_TTL_MS, max);
  cache.setLive(true);
  return { cache, clock };
}

describe('BlockCache', () => {
  it('refuses a noted block with its remaining time and count, for at most a minute', () => {
    const { cache, clock } = live();
    cache.note('a', 600_000, undefined, { count: 5 });
    expect(cache.refusal([spec('x'), spec('a')], {})).toEqual({ ok: false, index: 1, retryAfterMs: 600_000, count: 5, blocked: true });
    clock.advance(BLOCK_CACHE_MAX_TTL_MS - 1);
    expect(cache.refusal([spec('a')], {})).toMatchObject({ retryAfterMs: 600_000 - BLOCK_CACHE_MAX_TTL_MS + 1 });
    clock.advance(1);
    expect(cache.refusal([spec('a')], {})).toBeNull();
    cache.note('b', 5_000);
    clock.advance(5_000);
    expect(cache.refusal([spec('b')], {})).toBeNull();
  });

  it('never refuses a spec the attempt could be exempt from (the exemption lives in Redis)', () => {
    const { cache } = live();
    cache.note('a', 60_000);
    const kg = spec('a', { knownGoodExempt: true });
    const hint = spec('a', { hintExempt: true });
    expect(cache.refusal([kg], { knownGoodKey: 'kg:x:y' })).toBeNull();
    expect(cache.refusal([hint], { hint: { key: 'h:y', value: 'abc' } })).toBeNull();
    // No pair or hint in this attempt (the connect-time check): nothing could exempt it.
    expect(cache.refusal([kg, hint], {})).toMatchObject({ ok: false, index: 0 });
    expect(cache.refusal([kg], { hint: { key: 'h:y', value: 'abc' } })).toMatchObject({ ok: false });
  });

  it('a check-only hit that wants the address\'s successes is refused only with them', () => {
    const { cache } = live();
    cache.note('a', 60_000);
    expect(cache.refusal([spec('a')], { count: false, successesKey: 'se:1' })).toBeNull();
    expect(cache.refusal([spec('a')], { successesKey: 'se:1' })).toMatchObject({ ok: false });
    cache.note('a', 60_000, undefined, { successes: { key: 'se:1', n: 0 } });
    expect(cache.refusal([spec('a')], { count: false, successesKey: 'se:1' })).toMatchObject({ ok: false, successes: 0 });
    expect(cache.refusal([spec('a')], { count: false, successesKey: 'se:2' })).toBeNull();
  });

  it('an unblock forgets the key and makes answers asked for before it stale', () => {
    const { cache } = live();
    cache.note('a', 60_000);
    const asked = cache.generation;
    cache.forget('a');
    expect(cache.refusal([spec('a')], {})).toBeNull();
    cache.note('a', 60_000, asked); // the answer left Redis before the unblock
    expect(cache.refusal([spec('a')], {})).toBeNull();
    cache.note('a', 60_000, cache.generation);
    expect(cache.refusal([spec('a')], {})).toMatchObject({ ok: false });
  });

  it('holds nothing while its channel is down, and starts empty when it is back', () => {
    const { cache } = live();
    cache.note('a', 60_000);
    cache.setLive(false);
    expect(cache.refusal([spec('a')], {})).toBeNull();
    cache.note('b', 60_000);
    cache.setLive(true);
    expect(cache.size).toBe(0);
  });

  it('is bounded: past its bound the older half goes at once, the newest stay', () => {
    const { cache } = live(4);
    for (const k of ['a', 'b', 'c', 'd', 'e']) cache.note(k, 60_000);
    expect(cache.size).toBeLessThanOrEqual(4);
    expect(['a', 'b'].map((k) => cache.refusal([spec(k)], {}))).toEqual([null, null]);
    for (const k of ['c', 'd', 'e']) expect(cache.refusal([spec(k)], {})).toMatchObject({ ok: false });
    for (let i = 0; i < 10_000; i++) cache.note(`k${i}`, 60_000);
    expect(cache.size).toBeLessThanOrEqual(4);
    expect(cache.refusal([spec('k9999')], {})).toMatchObject({ ok: false });
  });
});
