// The bounded cache of GeoIP answers and blocklist answers: never more than its bound, the
// entries asked lately survive a halving, the rest go.
import { describe, expect, it } from 'vitest';
import { HalvingCache } from '../../src/halving-cache.js';

describe('HalvingCache', () => {
  it('holds at most its bound, keeps what was asked lately, forgets the oldest half at once', () => {
    const c = new HalvingCache<string, number>(4);
    for (const k of ['a', 'b']) c.set(k, 1);
    c.set('c', 1); // recent was full (2): a and b become older
    expect(c.get('a')).toBe(1); // asked: back to recent, with c
    c.set('d', 1); // recent (c, a) full: they become older, b is dropped
    expect(c.size).toBeLessThanOrEqual(4);
    expect([c.get('b'), c.get('a'), c.get('d')]).toEqual([undefined, 1, 1]);
    for (let i = 0; i < 1000; i++) c.set(`k${i}`, i);
    expect(c.size).toBeLessThanOrEqual(4);
    expect(c.get('k999')).toBe(999);
    c.delete('k999');
    expect(c.get('k999')).toBeUndefined();
    c.clear();
    expect(c.size).toBe(0);
  });

  it('setting a key it holds does not halve', () => {
    const c = new HalvingCache<string, number>(4);
    c.set('a', 1);
    c.set('b', 2);
    c.set('b', 3);
    expect([c.get('a'), c.get('b'), c.size]).toEqual([1, 3, 2]);
  });
});
