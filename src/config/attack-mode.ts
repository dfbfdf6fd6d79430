// The limits.attackMode section: when the global login-failure rate says "distributed attack"
// (limits/attack-mode.ts decides; this file only validates and documents). Pure.
import { z } from 'zod';
import { duration } from './fields.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

/** A duration between lo and hi (both in ms); whole minutes when the detector counts it in
 *  per-minute buckets. */
const between = (d: ReturnType<typeof duration>, lo: number, hi: number, words: string, wholeMinutes = false) =>
  d.refine((ms) => ms >= lo && ms <= hi && (!wholeMinutes || ms % MINUTE === 0), { message: `expected ${words}` });

export const attackModeSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe('Detect distributed attacks from the global login-failure rate. Off: attack mode is only ever on when forced through the admin API.'),
    warmUp: between(
      duration('No automatic attack mode until the process has watched logins this long (and seen minLogins): a fresh start has no baseline to compare with. 1h: an hour of traffic gives a first baseline (its average is corrected for the short history), and a restart is not a blind spot for long.'),
      0,
      7 * DAY,
      'a duration of at most 7d',
    ).prefault('1h'),
    minLogins: z
      .number()
      .int()
      .min(0)
      .default(100)
      .describe('Backend verdicts (successes and failures) to see before the baseline counts, beside warmUp. 100: a small site gets there within its first hour, and a baseline from fewer logins says little.'),
    window: between(
      duration('The current failure rate is measured over this sliding window, in whole minutes. 1m: a credential-stuffing run is refused within a minute of starting (measured: with 2m, more than half of a stuffed list reached the backend first), while one busy second does not make a rate.'),
      MINUTE,
      10 * MINUTE,
      'whole minutes from 1m to 10m',
      true,
    ).prefault('1m'),
    halfLife: between(
      duration('Half-life of the baseline, an exponentially weighted average of failures per minute. 6h: follows the day-night swing of a site, yet a burst of minutes barely moves it. Not updated while attack mode is on.'),
      10 * MINUTE,
      30 * DAY,
      'a duration from 10m to 30d',
    ).prefault('6h'),
    factor: z
      .number()
      .min(1.5)
      .max(1000)
      .default(5)
      .describe('Enter when the current rate exceeds factor × baseline (and minFailuresPerMin). 5: the normal swing of failures over a day stays within 2-3× of its average; a botnet run is tens of times over it.'),
    minFailuresPerMin: z
      .number()
      .min(1)
      .default(10)
      .describe('Floor of the enter threshold, in backend-rejected logins per minute of this process: a quiet site (baseline 0.1/min) does not enter on a few typos. 10/min (600/h) is above the wrong passwords of a site of a few thousand mailboxes and reached in seconds by a distributed run; entering costs little, since known pairs and hint matches still pass.'),
    leaveRatio: z
      .number()
      .gt(0)
      .max(1)
      .default(0.5)
      .describe('Hysteresis: leave once every minute of the last cooldown stayed under leaveRatio × the enter threshold. 0.5: an attack that pauses or slows a little does not make the mode flap.'),
    cooldown: between(
      duration('How long, in whole minutes, the rate must stay under the leave threshold (and the least time attack mode lasts once entered automatically).'),
      MINUTE,
      60 * MINUTE,
      'whole minutes from 1m to 60m',
      true,
    ).prefault('10m'),
    maxDuration: between(
      duration('Longest automatic attack mode: then it leaves, forgets its baseline and warms up again, so a lasting change of the normal failure rate becomes the new normal instead of keeping the mode on for good. A forced mode has no limit.'),
      10 * MINUTE,
      30 * DAY,
      'a duration from 10m to 30d',
    ).prefault('12h'),
  })
  .prefault({})
  .describe(
    'Attack mode: while the failure rate of logins is far above its learned baseline (a distributed attack), logins from unknown (user, network) pairs whose password hint does not match are refused without the backend. Measured per process, on backend verdicts only; see README "Attack mode".',
  );

export type AttackModeConfig = z.output<typeof attackModeSchema>;
