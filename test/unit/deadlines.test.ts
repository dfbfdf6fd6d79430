// server/deadlines.ts: absolute deadlines of many connections on one timer per duration, under
// fake timers (performance.now included).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cancelDeadline, DeadlineEntry, startDeadline } from '../../src/server/deadlines.js';

class Conn extends DeadlineEntry {
  constructor(
    readonly name: string,
    private readonly log: string[],
    private readonly onGoodbye?: () => void,
  ) {
    super();
  }
  goodbye(reason: 'timeout'): void {
    this.log.push(`${this.name}:${reason}@${Math.round(performance.now())}`);
    this.onGoodbye?.();
  }
}

describe('deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => vi.useRealTimers());

  it('each entry is told at its own deadline, in order, not before', () => {
    const log: string[] = [];
    const t0 = performance.now();
    const a = new Conn('a', log);
    startDeadline(a, 1000);
    vi.advanceTimersByTime(300);
    const b = new Conn('b', log);
    startDeadline(b, 1000);
    vi.advanceTimersByTime(699);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual([`a:timeout@${Math.round(t0 + 1000)}`]);
    vi.advanceTimersByTime(299);
    expect(log).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(log).toEqual([`a:timeout@${Math.round(t0 + 1000)}`, `b:timeout@${Math.round(t0 + 1300)}`]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a cancelled entry is never told, wherever it is in the queue; cancelling twice is a no-op', () => {
    const log: string[] = [];
    const t0 = performance.now();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new Conn(n, log));
    startDeadline(a!, 500);
    vi.advanceTimersByTime(100);
    startDeadline(b!, 500);
    vi.advanceTimersByTime(100);
    startDeadline(c!, 500);
    cancelDeadline(b!);
    cancelDeadline(a!);
    cancelDeadline(a!);
    vi.advanceTimersByTime(499);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual([`c:timeout@${Math.round(t0 + 700)}`]);
    cancelDeadline(c!);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('durations are queued apart (a reload may change it), and an empty queue holds no timer', () => {
    const log: string[] = [];
    const t0 = performance.now();
    startDeadline(new Conn('long', log), 2000);
    startDeadline(new Conn('short', log), 500);
    vi.advanceTimersByTime(2000);
    expect(log).toEqual([`short:timeout@${Math.round(t0 + 500)}`, `long:timeout@${Math.round(t0 + 2000)}`]);
    const x = new Conn('x', log);
    startDeadline(x, 100);
    cancelDeadline(x);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('entries due together are all told in one pass, and one added meanwhile keeps its own deadline', () => {
    const log: string[] = [];
    const t0 = performance.now();
    let late: Conn | null = null;
    const first = new Conn('first', log, () => {
      late = new Conn('late', log);
      startDeadline(late, 1000);
    });
    startDeadline(first, 1000);
    startDeadline(new Conn('second', log), 1000);
    vi.advanceTimersByTime(1000);
    expect(log).toEqual([`first:timeout@${Math.round(t0 + 1000)}`, `second:timeout@${Math.round(t0 + 1000)}`]);
    vi.advanceTimersByTime(1000);
    expect(log.at(-1)).toBe(`late:timeout@${Math.round(t0 + 2000)}`);
    expect(late).not.toBeNull();
  });
});
