// mailgate's blocks sent to CrowdSec as a machine (crowdsec.machine): each block a firewall may
// enforce (Ban.firewall) becomes one alert carrying one ban decision (origin "mailgate",
// scenario "mailgate/<rule>", for the block's remaining time), and an unblock deletes mailgate's
// decisions on that address or network. CrowdSec's other bouncers (the firewall one) then
// enforce them. Logs in for a JWT (renewed before it ends, and on a 401). A push that fails is
// retried with the next read of the blocks (bounded); an outage is logged once. What the LAPI
// already holds from mailgate is read first, so a restart (whose first read lists every block
// as new) sends no second decision for a block CrowdSec has.
import type { Clock } from '../clock.js';
import type { CrowdsecConfig } from '../config/integrations-schema.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Ban, BanDiff } from './ban-feed.js';
import { OWN_ORIGIN } from './crowdsec-bouncer.js';
import { parseGoDuration } from './crowdsec-decisions.js';
import { lapiUrl, userAgent } from './crowdsec-http.js';

/** A request to the LAPI that takes longer is abandoned (and retried with the next change). */
export const PUSH_TIMEOUT_MS = 10_000;
/** Changes waiting for a LAPI that is down, at most: past it the oldest are forgotten (the
 *  blocks still hold in mailgate; CrowdSec's firewall just does not get them). */
export const MAX_PENDING = 10_000;
/** A token is renewed this long before it ends (1.4.x's last an hour). */
const RENEW_EARLY_MS = 60_000;
/** A decision the LAPI holds that ends this close to a block's end already covers it. */
const COVERED_MS = 60_000;

type Change = { op: 'add'; ban: Ban } | { op: 'delete'; ban: Ban };

export class CrowdsecMachine {
  private token: { jwt: string; untilMs: number } | null = null;
  /** By ban key: the last change of each not yet accepted by the LAPI. */
  private readonly pending = new Map<string, Change>();
  private failing = false;
  /** mailgate's decisions in the LAPI: value → when the last of them ends (read once). */
  private sent: Map<string, number> | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly cfg: CrowdsecConfig & { machine: NonNullable<CrowdsecConfig['machine']> },
    private readonly deps: { log: Logger; clock: Clock; metrics?: Pick<Metrics, 'crowdsecSignals'> },
  ) {}

  /** The BanFeed's listener: queues the diff's firewall blocks and sends what is queued. */
  sync(diff: BanDiff): Promise<void> {
    for (const ban of diff.removed) if (ban.firewall && ban.cidr) this.queue({ op: 'delete', ban });
    for (const ban of [...diff.added, ...diff.extended]) if (ban.firewall && ban.cidr) this.queue({ op: 'add', ban });
    this.running = this.running.then(() => this.flush());
    return this.running;
  }

  private queue(c: Change): void {
    this.pending.delete(c.ban.key);
    this.pending.set(c.ban.key, c);
    if (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value!);
  }

  private async flush(): Promise<void> {
    for (const [key, c] of [...this.pending]) {
      try {
        this.sent ??= await this.held();
        if (c.op === 'add') await this.push(c.ban);
        else await this.remove(c.ban);
        if (this.pending.get(key) === c) this.pending.delete(key);
        this.deps.metrics?.crowdsecSignals.inc({ action: c.op, result: 'ok' });
        if (this.failing) this.deps.log.info({ event: 'integrations.recovered', source: 'crowdsec-machine' }, 'the CrowdSec LAPI takes blocks again');
        this.failing = false;
      } catch (err) {
        this.deps.metrics?.crowdsecSignals.inc({ action: c.op, result: 'error' });
        if (!this.failing) this.deps.log.warn({ event: 'integrations.error', source: 'crowdsec-machine', error: (err as Error).message }, 'cannot send blocks to the CrowdSec LAPI: retried with the next change');
        this.failing = true;
        return;
      }
    }
  }

  /** The decisions of origin mailgate the LAPI holds (GET /v1/alerts, as cscli lists them). */
  private async held(): Promise<Map<string, number>> {
    const q = new URLSearchParams({ origin: OWN_ORIGIN, has_active_decision: 'true', limit: '0' });
    const alerts = (await this.request('GET', `alerts?${q.toString()}`)) as { decisions?: { origin?: string; value?: string; duration?: string }[] | null }[] | null;
    const held = new Map<string, number>();
    const now = this.deps.clock.now();
    for (const d of (Array.isArray(alerts) ? alerts : []).flatMap((a) => a.decisions ?? [])) {
      const ms = typeof d.duration === 'string' ? parseGoDuration(d.duration) : null;
      if (d.origin === OWN_ORIGIN && typeof d.value === 'string' && ms !== null && ms > 0) held.set(d.value, Math.max(held.get(d.value) ?? 0, now + ms));
    }
    return held;
  }

  private async push(ban: Ban): Promise<void> {
    const remainingSec = Math.ceil((ban.untilMs - this.deps.clock.now()) / 1000);
    const { scope, value } = scopeOf(ban.cidr!);
    if (remainingSec <= 0 || (this.sent?.get(value) ?? 0) >= ban.untilMs - COVERED_MS) return;
    const at = new Date(this.deps.clock.now()).toISOString();
    const scenario = `${OWN_ORIGIN}/${ban.rule}`;
    const alert = {
      scenario,
      scenario_hash: '',
      scenario_version: '',
      message: `${value} blocked by mailgate's rule ${ban.rule}`,
      events_count: 1,
      start_at: at,
      stop_at: at,
      capacity: 0,
      leakspeed: '0',
      simulated: false,
      events: [],
      source: { scope, value, ...(scope === 'Ip' ? { ip: value } : { range: value }) },
      // With decisions of its own, the LAPI applies no profile to the alert.
      decisions: [{ origin: OWN_ORIGIN, type: 'ban', scope, value, duration: `${remainingSec}s`, scenario }],
    };
    await this.request('POST', 'alerts', JSON.stringify([alert]));
    this.sent?.set(value, ban.untilMs);
  }

  /** Deletes mailgate's decisions on exactly this address or network (contains=false: not a
   *  network holding it; 1.4.6 has no scope filter on delete). */
  private async remove(ban: Ban): Promise<void> {
    const { scope, value } = scopeOf(ban.cidr!);
    const q = new URLSearchParams({ [scope === 'Ip' ? 'ip' : 'range']: value, origin: OWN_ORIGIN, contains: 'false' });
    await this.request('DELETE', `decisions?${q.toString()}`);
    this.sent?.delete(value);
  }

  /** The answer's JSON (null when it has none). */
  private async request(method: string, path: string, body?: string, retried = false): Promise<unknown> {
    const jwt = await this.jwt();
    const res = await fetch(lapiUrl(this.cfg.url, path), {
      method,
      body,
      headers: { Authorization: `Bearer ${jwt}`, 'User-Agent': userAgent(), 'Content-Type': 'application/json' },
      signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
    });
    const text = await res.text().catch(() => '');
    if (res.status === 401 && !retried) {
      this.token = null;
      return this.request(method, path, body, true);
    }
    if (!res.ok) throw new Error(`LAPI answered ${method} /v1/${path.split('?')[0]} with ${res.status}`);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return null;
    }
  }

  private async jwt(): Promise<string> {
    if (this.token && this.token.untilMs - RENEW_EARLY_MS > this.deps.clock.now()) return this.token.jwt;
    const res = await fetch(lapiUrl(this.cfg.url, 'watchers/login'), {
      method: 'POST',
      body: JSON.stringify({ machine_id: this.cfg.machine.login, password: this.cfg.machine.password ?? '', scenarios: [] }),
      headers: { 'User-Agent': userAgent(), 'Content-Type': 'application/json' },
      signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
    });
    const body = (await res.json().catch(() => null)) as { token?: unknown; expire?: unknown } | null;
    if (!res.ok || typeof body?.token !== 'string') throw new Error(`machine login as ${this.cfg.machine.login} failed with ${res.status} (crowdsec.machine: login and password)`);
    const until = typeof body.expire === 'string' ? Date.parse(body.expire) : NaN;
    // The expiry is on the LAPI's clock: kept as a duration from now on ours.
    const lifeMs = Number.isFinite(until) ? until - Date.now() : 10 * 60_000;
    this.token = { jwt: body.token, untilMs: this.deps.clock.now() + lifeMs };
    return body.token;
  }
}

/** An address is scope Ip; a network (a prefix rule's block) scope Range. */
function scopeOf(cidr: string): { scope: 'Ip' | 'Range'; value: string } {
  return cidr.includes('/') ? { scope: 'Range', value: cidr } : { scope: 'Ip', value: cidr };
}
