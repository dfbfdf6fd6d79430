// Attack mode on a hand-moved clock: warm-up, entering on a burst over the learned baseline,
// the baseline frozen while on, hysteresis on the way out, forcing, clock gaps, bounded memory.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { attackModeSchema } from '../../src/config/attack-mode.js';
import { AttackMode, type AttackModeReason, type AttackModeStatus } from '../../src/limits/attack-mode.js';

const MINUTE = 60_000;

/** The mechanism tests below pin the window and floor they reason with (2 minutes, 20 a
 *  minute), whatever the shipped defaults are. */
function detector(overrides: Record<string, unknown> = {}) {
  overrides = { window: '2m', minFailuresPerMin: 20, ...overrides };
  const clock = new ManualClock();
  const changes: { active: boolean; reason: AttackModeReason }[] = [];
  const am = new AttackMode(attackModeSchema.parse(overrides), clock, (s: AttackModeStatus, reason) => changes.push({ active: s.active, reason }));
  return { clock, am, changes };
}

/** `minutes` of traffic, each minute's verdicts spread evenly over it. */
function traffic(d: ReturnType<typeof detector>, minutes: number, failsPerMin: number, oksPerMin = 0): void {
  for (let m = 0; m < minutes; m++) {
    const n = failsPerMin + oksPerMin;
    if (n === 0) {
      d.clock.advance(MINUTE);
      continue;
    }
    for (let i = 0; i < n; i++) {
      d.am.record(i < failsPerMin ? 'fail' : 'ok');
      d.clock.advance(MINUTE / n);
    }
  }
}

/** Two hours of a quiet site: 2 wrong passwords and 30 logins a minute. */
function warmedUp(overrides: Record<string, unknown> = {}) {
  const d = detector(overrides);
  traffic(d, 120, 2, 30);
  expect(d.am.status()).toMatchObject({ active: false, warmedUp: true });
  return d;
}

describe('attack mode', () => {
  it('schema: defaults for a small-to-mid site, windows in whole minutes', () => {
    expect(attackModeSchema.parse(undefined)).toEqual({
      enabled: true,
      warmUp: 3_600_000,
      minLogins: 100,
      window: MINUTE,
      halfLife: 6 * 3_600_000,
      factor: 5,
      minFailuresPerMin: 10,
      leaveRatio: 0.5,
      cooldown: 10 * MINUTE,
      maxDuration: 12 * 3_600_000,
    });
    expect(attackModeSchema.safeParse({ window: '90s' }).success).toBe(false);
    expect(attackModeSchema.safeParse({ cooldown: '2h' }).success).toBe(false);
    expect(attackModeSchema.safeParse({ factor: 1 }).success).toBe(false);
  });

  it('a fresh start does not enter under a heavy burst: no hour of history, then not enough logins', () => {
    const d = detector();
    traffic(d, 59, 500);
    expect(d.am.active).toBe(false);
    expect(d.am.status().warmedUp).toBe(false);
    expect(d.changes).toEqual([]);

    // An hour on the clock but fewer than minLogins verdicts: still warming up.
    const quiet = detector();
    traffic(quiet, 90, 0, 0);
    traffic(quiet, 1, 99);
    expect(quiet.am.status()).toMatchObject({ warmedUp: false, active: false });
  });

  it('after warm-up, a burst over factor × baseline and the floor enters once', () => {
    const d = warmedUp();
    const s = d.am.status();
    expect(s.baselinePerMin).toBeCloseTo(2, 1); // corrected for the short history
    expect(s.thresholdPerMin).toBe(20); // 5 × 2 = 10 is under the floor
    traffic(d, 1, 15, 30);
    expect(d.am.active).toBe(false); // over 5 × baseline, under the floor
    traffic(d, 5, 100, 30);
    expect(d.am.active).toBe(true);
    expect(d.changes).toEqual([{ active: true, reason: 'rate' }]);
    expect(d.am.status().since).not.toBeNull();
  });

  it('the baseline is frozen while attack mode is on', () => {
    const d = warmedUp();
    traffic(d, 3, 200, 30);
    expect(d.am.active).toBe(true);
    const frozen = d.am.status().baselinePerMin;
    traffic(d, 60, 200, 30);
    expect(d.am.status().baselinePerMin).toBe(frozen);
    expect(d.changes).toHaveLength(1);
  });

  it('leaves once the rate stayed under the lower threshold for the cooldown (hysteresis), once', () => {
    const d = warmedUp();
    traffic(d, 5, 200, 30);
    expect(d.changes).toEqual([{ active: true, reason: 'rate' }]);
    // Under the enter threshold (20) but over the leave threshold (10): stays on.
    traffic(d, 30, 15, 30);
    expect(d.am.active).toBe(true);
    // Back to normal: on until a whole cooldown of calm minutes has passed.
    traffic(d, 9, 2, 30);
    expect(d.am.active).toBe(true);
    traffic(d, 2, 2, 30);
    expect(d.am.active).toBe(false);
    traffic(d, 30, 2, 30);
    expect(d.changes).toEqual([
      { active: true, reason: 'rate' },
      { active: false, reason: 'calm' },
    ]);
    // Learning again: the attack did not move the baseline.
    expect(d.am.status().baselinePerMin).toBeCloseTo(2, 0);
  });

  it('a read is enough to leave: no login needed after the attack stops', () => {
    const d = warmedUp();
    traffic(d, 5, 200);
    d.clock.advance(15 * MINUTE);
    expect(d.am.status()).toMatchObject({ active: false, failuresPerMin: 0 });
    expect(d.changes.map((c) => c.reason)).toEqual(['rate', 'calm']);
  });

  it('a site whose normal failure rate is high does not enter at that rate, only far above it', () => {
    const d = detector();
    traffic(d, 180, 60, 200);
    expect(d.am.status().baselinePerMin).toBeCloseTo(60, 0);
    traffic(d, 10, 200, 200); // over 3×: still normal swing
    expect(d.am.active).toBe(false);
    traffic(d, 3, 400, 200); // over 5× (300/min)
    expect(d.am.active).toBe(true);
  });

  it('force on, off and auto: the operator overrides the detector until auto, each change reported once', () => {
    const d = warmedUp();
    expect(d.am.force('on')).toMatchObject({ active: true, forced: 'on' });
    const baseline = d.am.status().baselinePerMin;
    traffic(d, 30, 2, 30);
    expect(d.am.status()).toMatchObject({ active: true, baselinePerMin: baseline }); // not learning while forced on
    d.am.force('on');
    expect(d.am.force('auto')).toMatchObject({ active: false, forced: null });
    traffic(d, 3, 200, 30);
    expect(d.am.active).toBe(true);
    expect(d.am.force('off')).toMatchObject({ active: false, forced: 'off' });
    traffic(d, 3, 200, 30);
    expect(d.am.active).toBe(false); // the attack goes on: forced off holds
    expect(d.am.force('auto').active).toBe(true); // and the automatic state was on underneath
    expect(d.changes.map((c) => [c.active, c.reason])).toEqual([
      [true, 'forced'],
      [false, 'released'],
      [true, 'rate'],
      [false, 'forced'],
      [true, 'released'],
    ]);
  });

  it('a gap of days on the clock: empty minutes count as zeros, in one step', () => {
    const d = warmedUp();
    d.clock.advance(5 * 86_400_000);
    const s = d.am.status();
    expect(s).toMatchObject({ active: false, failuresPerMin: 0, warmedUp: true });
    expect(s.baselinePerMin).toBeLessThan(0.01);
    traffic(d, 3, 10, 30); // the floor keeps a quiet site out
    expect(d.am.active).toBe(false);
    traffic(d, 3, 40, 30);
    expect(d.am.active).toBe(true);
    d.clock.advance(3 * 86_400_000); // while on: the next read finds it calm
    expect(d.am.active).toBe(false);
    expect(d.changes.map((c) => c.reason)).toEqual(['rate', 'calm']);
  });

  it('after maxDuration it leaves, forgets the baseline and warms up again', () => {
    const d = warmedUp({ maxDuration: '1h' });
    traffic(d, 61, 200, 30);
    expect(d.changes.map((c) => c.reason)).toEqual(['rate', 'max-duration']);
    expect(d.am.status().warmedUp).toBe(false);
    traffic(d, 59, 200, 30); // the lasting rate is learned, not fought
    expect(d.am.active).toBe(false);
    traffic(d, 60, 200, 30);
    expect(d.am.status()).toMatchObject({ active: false, warmedUp: true });
    expect(d.am.status().baselinePerMin).toBeGreaterThan(150);
  });

  it('a reload that disables it leaves attack mode; forcing still works', () => {
    const d = warmedUp();
    traffic(d, 3, 200, 30);
    d.am.reconfigure(attackModeSchema.parse({ enabled: false }));
    expect(d.am.status()).toMatchObject({ active: false, enabled: false });
    traffic(d, 10, 500, 30);
    expect(d.am.active).toBe(false);
    expect(d.am.force('on').active).toBe(true);
    expect(d.changes.map((c) => c.reason)).toEqual(['rate', 'disabled', 'forced']);
  });

  it('memory stays bounded under millions of verdicts over hours and jumps', () => {
    const d = detector();
    const size = d.am.footprint;
    for (let i = 0; i < 2_000_000; i++) {
      d.am.record(i % 3 === 0 ? 'ok' : 'fail');
      d.clock.advance(i % 100_000 === 0 ? 86_400_000 : 10);
    }
    expect(d.am.footprint).toBe(size);
    expect(size).toBeLessThanOrEqual(64);
    expect(Number.isFinite(d.am.status().baselinePerMin)).toBe(true);
  });
});
