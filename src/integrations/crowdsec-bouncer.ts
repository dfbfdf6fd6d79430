// A CrowdSec bouncer: pulls the LAPI's decision stream (GET /v1/decisions/stream: the full
// list with startup=true, then what changed since this bouncer key's last pull) and answers
// refuses(ip) from memory. One pull at a time, the next one interval after the last ended.
// While the LAPI cannot be reached: onError keep (each decision until its own end) or open
// (forget them all); logged once per outage; the first pull after one is a full one again.
import type { Clock } from '../clock.js';
import type { CrowdsecConfig } from '../config/integrations-schema.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { DecisionSet, parseGoDuration, type CsDecision, type CsDelta, type CsRefusal } from './crowdsec-decisions.js';
import { lapiUrl, userAgent } from './crowdsec-http.js';

/** A pull that takes longer is abandoned (and counts as the LAPI being down). A full list of
 *  several 100k decisions comes in a few seconds from a LAPI on the same network. */
export const PULL_TIMEOUT_MS = 15_000;
/** mailgate's own blocks pushed by its machine (crowdsec-machine.ts) come back in the stream:
 *  mailgate enforces them from its store already, and ignoring them here lets an unblock act
 *  at once instead of an interval later. */
export const OWN_ORIGIN = 'mailgate';

interface LapiDecision {
  id?: unknown;
  origin?: unknown;
  scenario?: unknown;
  scope?: unknown;
  type?: unknown;
  value?: unknown;
  duration?: unknown;
}

export interface BouncerDeps {
  log: Logger;
  clock: Clock;
  metrics?: Pick<Metrics, 'crowdsecDecisions'>;
}

export class CrowdsecBouncer {
  readonly decisions: DecisionSet;
  private readonly listeners: ((d: CsDelta) => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private synced = false;
  private failing = false;
  private reportedDrops = 0;
  private running: Promise<void> | null = null;

  constructor(
    private readonly cfg: CrowdsecConfig,
    private readonly deps: BouncerDeps,
  ) {
    this.decisions = new DecisionSet(deps.clock);
  }

  /** Every change of the set (the cluster relay passes them to the workers). */
  onChange(fn: (d: CsDelta) => void): void {
    this.listeners.push(fn);
  }

  /** The first pull (a LAPI that is down is logged, not thrown), then one per interval. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.pull();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Whether a CrowdSec decision refuses `ip` now. Never throws. */
  refuses(ip: string): CsRefusal | null {
    try {
      return this.decisions.refuses(ip);
    } catch {
      return null;
    }
  }

  /** One pull now (tests, and the timer); a caller during a pull gets that pull. */
  pull(): Promise<void> {
    this.running ??= this.pullOnce().finally(() => (this.running = null));
    return this.running;
  }

  private async pullOnce(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    try {
      const body = await this.get(!this.synced);
      const delta: CsDelta = { reset: !this.synced, add: this.wanted(body.new), remove: this.synced ? ids(body.deleted) : [] };
      this.synced = true;
      this.apply(delta);
      if (this.failing) this.deps.log.info({ event: 'integrations.recovered', source: 'crowdsec' }, 'the CrowdSec LAPI answers again');
      this.failing = false;
    } catch (err) {
      this.failed(err as Error);
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.pull(), this.cfg.interval);
      this.timer.unref();
    }
  }

  private failed(err: Error): void {
    if (!this.failing) {
      const keep = this.cfg.onError === 'keep';
      const what = keep ? 'keeping the last decisions, each until its end' : 'forgetting its decisions (onError: open)';
      this.deps.log.warn({ event: 'integrations.error', source: 'crowdsec', error: err.message }, `cannot pull from the CrowdSec LAPI: ${what}`);
    }
    this.failing = true;
    // The next answer is a full list again: the LAPI may have lost or replaced its database.
    this.synced = false;
    if (this.cfg.onError === 'open' && this.decisions.size > 0) this.apply({ reset: true, add: [], remove: [] });
  }

  private apply(delta: CsDelta): void {
    if (delta.add.length === 0 && delta.remove.length === 0 && !delta.reset) return;
    this.decisions.apply(delta);
    this.deps.metrics?.crowdsecDecisions.set(this.decisions.size);
    if (this.decisions.dropped > this.reportedDrops) {
      this.reportedDrops = this.decisions.dropped;
      this.deps.log.warn({ event: 'integrations.error', source: 'crowdsec', dropped: this.decisions.dropped }, 'more CrowdSec decisions than mailgate holds (1,000,000): the newest are not enforced');
    }
    for (const fn of this.listeners) fn(delta);
  }

  private async get(startup: boolean): Promise<{ new?: unknown; deleted?: unknown }> {
    const url = lapiUrl(this.cfg.url, 'decisions/stream');
    url.searchParams.set('startup', String(startup));
    const res = await fetch(url, {
      headers: { 'X-Api-Key': this.cfg.bouncerKey ?? '', 'User-Agent': userAgent() },
      signal: AbortSignal.timeout(PULL_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`LAPI answered ${res.status} ${res.statusText}${res.status === 403 ? ' (is crowdsec.bouncerKey a bouncer key?)' : ''}`);
    const body = (await res.json()) as { new?: unknown; deleted?: unknown } | null;
    if (typeof body !== 'object' || body === null) throw new Error('LAPI answered something other than a decision stream');
    return body;
  }

  /** The ban decisions of the configured scopes and origins, but mailgate's own. */
  private wanted(list: unknown): CsDecision[] {
    if (!Array.isArray(list)) return [];
    const now = this.deps.clock.now();
    const origins = this.cfg.origins?.map((o) => o.toLowerCase());
    const out: CsDecision[] = [];
    for (const d of list as LapiDecision[]) {
      if (typeof d !== 'object' || d === null || typeof d.id !== 'number' || typeof d.value !== 'string') continue;
      const scope = typeof d.scope === 'string' ? d.scope.toLowerCase() : '';
      if ((scope !== 'ip' && scope !== 'range') || !this.cfg.scopes.includes(scope)) continue;
      // Captcha and other remediations have no meaning for a mail client: only bans.
      if (typeof d.type !== 'string' || d.type.toLowerCase() !== 'ban') continue;
      const origin = typeof d.origin === 'string' ? d.origin : '';
      if (origin.toLowerCase() === OWN_ORIGIN || (origins && !origins.includes(origin.toLowerCase()))) continue;
      const ms = typeof d.duration === 'string' ? parseGoDuration(d.duration) : null;
      if (ms === null || ms <= 0) continue;
      out.push({ id: d.id, scope, value: d.value, origin, scenario: typeof d.scenario === 'string' ? d.scenario : '', untilMs: now + ms });
    }
    return out;
  }
}

function ids(list: unknown): number[] {
  if (!Array.isArray(list)) return [];
  return (list as LapiDecision[]).flatMap((d) => (typeof d === 'object' && d !== null && typeof d.id === 'number' ? [d.id] : []));
}
