// The connect-time block hints: they end when the injected clock passes them, and the map
// stays within its bound by dropping the oldest. ManualClock: no waiting on the wall clock.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { BlockHints, MAX_BLOCK_HINTS } from '../../src/limits/block-hints.js';

describe('BlockHints', () => {
  it('a hint holds until the clock passes its end, then is dropped', () => {
    const clock = new ManualClock();
    const hints = new BlockHints(clock);
    expect(hints.has('10.0.0.1')).toBe(false);
    hints.note('10.0.0.1', 60_000);
    clock.advance(60_000);
    expect(hints.has('10.0.0.1')).toBe(true);
    clock.advance(1);
    expect(hints.has('10.0.0.1')).toBe(false);
    expect(hints.size).toBe(0);
  });

  it('a new note restarts the hint; forget drops it at once', () => {
    const clock = new ManualClock();
    const hints = new BlockHints(clock);
    hints.note('2001:db8::/64', 1_000);
    clock.advance(900);
    hints.note('2001:db8::/64', 1_000);
    clock.advance(900);
    expect(hints.has('2001:db8::/64')).toBe(true);
    hints.forget('2001:db8::/64');
    expect(hints.has('2001:db8::/64')).toBe(false);
  });

  it('stays within its bound: past it the older half goes at once, a renewed hint stays', () => {
    const hints = new BlockHints(new ManualClock(), 4);
    for (const k of ['a', 'b']) hints.note(k, 60_000);
    hints.note('a', 60_000); // renewed: takes no second place
    expect(hints.size).toBe(2);
    for (const k of ['c', 'd', 'e']) hints.note(k, 60_000);
    expect(hints.size).toBeLessThanOrEqual(4);
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => hints.has(k))).toEqual([false, false, true, true, true]);
  });

  it('the default bound holds a flood from many addresses', () => {
    const hints = new BlockHints(new ManualClock());
    for (let i = 0; i < MAX_BLOCK_HINTS + 10; i++) hints.note(`k${i}`, 60_000);
    expect(hints.size).toBeLessThanOrEqual(MAX_BLOCK_HINTS);
    expect(hints.has(`k${MAX_BLOCK_HINTS + 9}`)).toBe(true);
    expect(hints.has('k0')).toBe(false);
    expect(hints.has(`k${MAX_BLOCK_HINTS + 9}`)).toBe(true);
  });
});
