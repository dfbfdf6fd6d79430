// The tarpit: delays double per failure up to the cap; one timer serves every waiter, in
// due order; beyond the bound, replies go out at once. Fake timers: no wall-clock sleeping.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { Tarpit, tarpitDelayMs } from '../../src/limits/tarpit.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('tarpitDelayMs', () => {
  it('doubles from base per failure and stops at max', () => {
    const d = { base: 1000, max: 15_000 };
    expect([0, 1, 2, 3, 4, 5, 50].map((n) => tarpitDelayMs(d, n))).toEqual([0, 1000, 2000, 4000, 8000, 15_000, 15_000]);
  });
});

describe('Tarpit', () => {
  it('releases waiters at their due time, in order, with one timer', async () => {
    vi.useFakeTimers();
    const t = new Tarpit(systemClock);
    const done: string[] = [];
    void t.wait(300).then(() => done.push('c'));
    void t.wait(100).then(() => done.push('a'));
    void t.wait(200).then(() => done.push('b'));
    expect(t.waiting).toBe(3);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(99);
    expect(done).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(200);
    expect(done).toEqual(['a', 'b', 'c']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is bounded: beyond maxWaiters a reply is not delayed; close releases everyone', async () => {
    vi.useFakeTimers();
    const t = new Tarpit(systemClock, 2);
    let released = 0;
    void t.wait(1000).then(() => released++);
    void t.wait(1000).then(() => released++);
    await t.wait(1000); // the third is not held
    expect(t.waiting).toBe(2);
    t.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(released).toBe(2);
  });
});
