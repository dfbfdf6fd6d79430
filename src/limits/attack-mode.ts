// Attack mode (issue 14 item 4): the global rate of logins the backend rejected, against a
// baseline learned from this process's own history. Pure: no sockets, no timers; it decides
// on each record() and on each read, on the injected clock.
//
// How it decides (the defaults and why: config/attack-mode.ts):
// - Failures are counted in per-minute buckets, a fixed ring of RING_MINUTES whatever the
//   traffic. A clock jump of any length clears at most the ring and folds the skipped minutes
//   into the baseline as zeros in closed form: no loop over skipped minutes.
// - The current rate slides over `window` minutes: the buckets inside it, plus the part of
//   the oldest one still inside, divided by its minutes.
// - The baseline is an exponentially weighted average of failures per completed minute
//   (`halfLife`), divided by the weight seen so far so that one hour of history already gives
//   a fair average instead of one pulled towards zero. It learns neither while attack mode is
//   on automatically nor while it is forced on: an attack never becomes the normal it is
//   compared with.
// - Enter automatically once warmed up (`warmUp` on the clock since start, and `minLogins`
//   verdicts) when the current rate exceeds factor × baseline and minFailuresPerMin. That
//   threshold is frozen on entry.
// - Leave automatically once `cooldown` has passed since entering and each of the last
//   `cooldown` whole minutes, the current one so far and the current rate stayed under
//   leaveRatio × that threshold (hysteresis);
//   or after `maxDuration`, when the baseline is forgotten and warm-up starts again, so a
//   lasting change of the normal rate cannot hold the mode on for good.
// - force('on' | 'off') overrides the automatic state until force('auto'); the automatic state
//   goes on underneath. onChange runs once per change of `active`, whatever caused it.
import type { Clock } from '../clock.js';
import type { AttackModeConfig } from '../config/attack-mode.js';
import type { Logger } from '../logging/logger.js';

const MINUTE = 60_000;
/** Buckets kept: the longest cooldown the schema allows (60 whole minutes) plus the current
 *  one, or the longest window (10) plus the bucket it partly covers; and a spare. */
const RING_MINUTES = 62;

/** What an operator may ask for: on and off hold until auto. */
export const ATTACK_MODES = ['on', 'off', 'auto'] as const;
export type ForcedMode = 'on' | 'off';
/** Why `active` changed: rate (over the threshold), calm (back under it for the cooldown),
 *  max-duration, disabled (by a reload), forced (by an operator), released (forced back to auto). */
export type AttackModeReason = 'rate' | 'calm' | 'max-duration' | 'disabled' | 'forced' | 'released';

export interface AttackModeStatus {
  active: boolean;
  forced: ForcedMode | null;
  /** When `active` last changed, ms since the epoch on the clock; null: never since start. */
  since: number | null;
  /** Backend-rejected logins per minute over the window, now. */
  failuresPerMin: number;
  /** The learned normal (frozen while active). */
  baselinePerMin: number;
  /** Off: the rate that enters attack mode now; on automatically: the rate to stay under. */
  thresholdPerMin: number;
  warmedUp: boolean;
  enabled: boolean;
}

export type AttackModeListener = (status: AttackModeStatus, reason: AttackModeReason) => void;

export class AttackMode {
  private readonly ring = new Float64Array(RING_MINUTES);
  /** The minute (since the epoch) the newest bucket counts. */
  private minute: number;
  /** Weighted sum of failures per completed minute, and the sum of those weights. */
  private ewma = 0;
  private weight = 0;
  private startedAt: number;
  private verdicts = 0;
  private auto = false;
  private autoSince = 0;
  /** The enter threshold at entry, frozen with the baseline. */
  private frozenThreshold = 0;
  private forced: ForcedMode | null = null;
  private on = false;
  private since: number | null = null;

  constructor(
    private cfg: AttackModeConfig,
    private readonly clock: Clock,
    private readonly onChange: AttackModeListener = () => {},
  ) {
    const now = clock.now();
    this.minute = Math.floor(now / MINUTE);
    this.startedAt = now;
  }

  /** One verdict of the backend (not a refusal by mailgate's own limits). */
  record(outcome: 'ok' | 'fail'): void {
    const now = this.clock.now();
    this.roll(now);
    this.verdicts++;
    if (outcome === 'fail') this.ring[this.slot(this.minute)]! += 1;
    this.evaluate(now, null);
  }

  get active(): boolean {
    this.evaluate(this.clock.now(), null);
    return this.on;
  }

  force(mode: (typeof ATTACK_MODES)[number]): AttackModeStatus {
    this.forced = mode === 'auto' ? null : mode;
    this.evaluate(this.clock.now(), mode === 'auto' ? 'released' : 'forced');
    return this.snapshot(this.clock.now());
  }

  status(): AttackModeStatus {
    const now = this.clock.now();
    this.evaluate(now, null);
    return this.snapshot(now);
  }

  /** A reload: new thresholds, same history. */
  reconfigure(cfg: AttackModeConfig): void {
    this.cfg = cfg;
    this.evaluate(this.clock.now(), null);
  }

  /** Buckets held: a fixed ring, the memory bound whatever the traffic. */
  get footprint(): number {
    return this.ring.length;
  }

  private slot(minute: number): number {
    return ((minute % RING_MINUTES) + RING_MINUTES) % RING_MINUTES;
  }

  private get learning(): boolean {
    return !this.auto && this.forced !== 'on';
  }

  /** Moves the newest bucket to now's minute, folding completed minutes into the baseline. */
  private roll(now: number): void {
    const m = Math.floor(now / MINUTE);
    if (m <= this.minute) return; // same minute, or the clock stepped back: the newest bucket counts
    const skipped = m - this.minute - 1;
    if (this.learning) {
      const keep = 2 ** (-MINUTE / this.cfg.halfLife); // 1 - alpha
      this.ewma = this.ewma * keep + (1 - keep) * this.ring[this.slot(this.minute)]!;
      this.weight = this.weight * keep + (1 - keep);
      const decay = keep ** skipped; // the skipped minutes had no failures
      this.ewma *= decay;
      this.weight = 1 - (1 - this.weight) * decay;
    }
    for (let i = 1; i <= Math.min(m - this.minute, RING_MINUTES); i++) this.ring[this.slot(this.minute + i)] = 0;
    this.minute = m;
  }

  /** Failures over the last `minutes` minutes, sliding: the oldest bucket counts for the part
   *  of its minute still inside. */
  private failuresOver(now: number, minutes: number): number {
    const elapsed = Math.min(1, Math.max(0, (now - this.minute * MINUTE) / MINUTE));
    let sum = this.ring[this.slot(this.minute - minutes)]! * (1 - elapsed);
    for (let i = 0; i < minutes; i++) sum += this.ring[this.slot(this.minute - i)]!;
    return sum;
  }

  private rate(now: number): number {
    const minutes = this.cfg.window / MINUTE;
    return this.failuresOver(now, minutes) / minutes;
  }

  private baseline(): number {
    return this.weight > 0 ? this.ewma / this.weight : 0;
  }

  private threshold(): number {
    return Math.max(this.cfg.factor * this.baseline(), this.cfg.minFailuresPerMin);
  }

  private warmedUp(now: number): boolean {
    return now - this.startedAt >= this.cfg.warmUp && this.verdicts >= this.cfg.minLogins;
  }

  /** The current rate, the current minute so far and each of the last `cooldown` whole
   *  minutes under `limit`. */
  private calm(now: number, limit: number): boolean {
    if (this.rate(now) >= limit) return false;
    for (let i = 0; i <= this.cfg.cooldown / MINUTE; i++) if (this.ring[this.slot(this.minute - i)]! >= limit) return false;
    return true;
  }

  private evaluate(now: number, cause: 'forced' | 'released' | null): void {
    this.roll(now);
    const c = this.cfg;
    let reason: AttackModeReason | null = null;
    if (this.auto) {
      if (!c.enabled) reason = 'disabled';
      else if (now - this.autoSince >= c.cooldown && this.calm(now, this.frozenThreshold * c.leaveRatio)) reason = 'calm';
      else if (now - this.autoSince >= c.maxDuration) {
        reason = 'max-duration';
        this.ewma = this.weight = this.verdicts = 0;
        this.startedAt = now;
      }
      if (reason) this.auto = false;
    } else if (c.enabled && this.warmedUp(now) && this.rate(now) > this.threshold()) {
      this.frozenThreshold = this.threshold();
      this.auto = true;
      this.autoSince = now;
      reason = 'rate';
    }
    const on = this.forced === null ? this.auto : this.forced === 'on';
    if (on === this.on) return;
    this.on = on;
    this.since = now;
    // Only a change of the automatic state (reason) or of the forced mode (cause) changes `on`.
    this.onChange(this.snapshot(now), (cause ?? reason)!);
  }

  private snapshot(now: number): AttackModeStatus {
    return {
      active: this.on,
      forced: this.forced,
      since: this.since,
      failuresPerMin: this.rate(now),
      baselinePerMin: this.baseline(),
      thresholdPerMin: this.auto ? this.frozenThreshold * this.cfg.leaveRatio : this.threshold(),
      warmedUp: this.warmedUp(now),
      enabled: this.cfg.enabled,
    };
  }
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/** The one log line of each change (the composition root passes it, or calls it from its
 *  onChange): warn on entering, info on leaving. */
export function logAttackModeChange(log: Logger, s: AttackModeStatus, reason: AttackModeReason): void {
  const fields = {
    reason,
    forced: s.forced,
    failuresPerMin: round2(s.failuresPerMin),
    baselinePerMin: round2(s.baselinePerMin),
    thresholdPerMin: round2(s.thresholdPerMin),
  };
  if (s.active) log.warn({ event: 'auth.attack-mode-on', ...fields }, 'attack mode on: logins from unknown networks need a known-good pair or a matching password hint');
  else log.info({ event: 'auth.attack-mode-off', ...fields }, 'attack mode off');
}
