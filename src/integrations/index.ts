// The integrations of the process that serves the admin endpoint (one process, or worker
// mode's primary): one ban feed shared by the firewall mirror, CrowdSec's machine, the ban
// list and the alerts; the alerts' watch on the store and the backends. Built once at start
// (their settings take effect after a restart).
import { tcpReachable } from '../backend/pool.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { LimitStore } from '../stores/store.js';
import { Alerts } from './alerts.js';
import { BanFeed, type Ban, type BanDiff } from './ban-feed.js';
import { NftablesMirror } from './nftables.js';

/** How often the ban feed reads the store when no integration asks for more. */
const DEFAULT_INTERVAL_MS = 10_000;
/** A ban list asked for within this of the last read is answered from it. */
const BANLIST_FRESH_MS = 1_000;
/** A backend counts as up when it accepts a TCP connection this fast. */
const PROBE_MS = 2_000;

export interface IntegrationsDeps {
  store: LimitStore;
  policy(): Policy;
  config(): Config;
  clock: Clock;
  log: Logger;
}

export class Integrations {
  readonly feed: BanFeed;
  readonly alerts: Alerts | null;
  readonly nftables: NftablesMirror | null;
  private readonly intervalMs: number;
  private lastRead = 0;
  private watch: NodeJS.Timeout | null = null;
  private readonly up = new Map<string, boolean>();

  constructor(
    initial: Config,
    private readonly deps: IntegrationsDeps,
  ) {
    this.intervalMs = Math.min(initial.firewall?.interval ?? Infinity, initial.crowdsec?.interval ?? Infinity, DEFAULT_INTERVAL_MS);
    this.feed = new BanFeed(deps.store, deps.policy, deps.clock, deps.log, this.intervalMs);
    this.feed.subscribe(() => void (this.lastRead = deps.clock.now()));
    this.nftables = initial.firewall ? new NftablesMirror(initial.firewall.nftables, deps) : null;
    this.nftables?.attach(this.feed);
    this.alerts = initial.alerts ? new Alerts(initial.alerts, deps.clock, deps.log) : null;
    if (this.alerts) this.feed.subscribe((diff) => this.alertBans(diff));
  }

  /** Whether anything reads the feed on its own (else it is read when the ban list is asked). */
  private get polled(): boolean {
    const c = this.deps.config();
    return this.alerts !== null || c.firewall !== undefined || c.crowdsec?.machine !== undefined;
  }

  start(): void {
    // The sets are declared first: the feed's first read waits for it, then rewrites them whole.
    void this.nftables?.start();
    if (this.polled) this.feed.start();
    if (!this.alerts) return;
    this.alerts.start();
    this.watch = setInterval(() => void this.checkHealth(), this.intervalMs);
    this.watch.unref();
  }

  /** The bans a firewall may enforce, for GET /api/v1/banlist.*: read again unless fresh. */
  async banlist(): Promise<Ban[]> {
    if (this.deps.clock.now() - this.lastRead > BANLIST_FRESH_MS) await this.feed.refresh();
    return this.feed.current().filter((b) => b.firewall);
  }

  /** Attack mode's change, as the detector reports it. */
  attackMode(active: boolean): void {
    this.alerts?.emit({ kind: 'attack-mode', state: active ? 'on' : 'off' });
  }

  private alertBans(diff: BanDiff): void {
    for (const b of diff.added) {
      const until = new Date(b.untilMs).toISOString();
      if (b.kind === 'ip' && b.cidr && !b.cidr.startsWith('grp:')) this.alerts!.emit({ kind: 'block', subject: b.cidr, rule: b.rule, until });
      else if (b.kind === 'user') this.alerts!.emit({ kind: 'protection', subject: b.userHash, rule: b.rule, until });
    }
  }

  /** The store's and each backend's state; a change is an alert (a first look that finds one
   *  down is one too). The timer calls it; tests too. */
  async checkHealth(): Promise<void> {
    const states: [string, 'store' | 'backend', boolean][] = [['store', 'store', this.deps.store.health?.up ?? true]];
    const backends = this.deps.config().backends;
    await Promise.all(
      Object.entries(backends).map(async ([name, b]) => {
        const up = (await Promise.all(b.servers.map((s) => tcpReachable(s.host, s.port, PROBE_MS)))).some(Boolean);
        states.push([`backend:${name}`, 'backend', up]);
      }),
    );
    for (const [key, kind, up] of states) {
      const before = this.up.get(key);
      this.up.set(key, up);
      if (before === up || (before === undefined && up)) continue;
      this.alerts!.emit({ kind, state: up ? 'up' : 'down', subject: kind === 'backend' ? key.slice('backend:'.length) : undefined });
    }
  }

  /** Stops reading; waits for an nft batch under way (bounded by its own timeout). */
  async stop(): Promise<void> {
    this.feed.stop();
    this.alerts?.stop();
    await this.nftables?.stop();
    if (this.watch) clearInterval(this.watch);
  }
}
