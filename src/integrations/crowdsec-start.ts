// CrowdSec in a process that talks to the LAPI (a single process, or the primary of worker
// mode): the bouncer (crowdsec.bouncerKey) and the machine fed by the ban feed
// (crowdsec.machine). Read at start: a change of crowdsec takes effect after a restart.
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { LimitStore } from '../stores/store.js';
import { startBanFeed, type BanFeed } from './ban-feed.js';
import { CrowdsecBouncer } from './crowdsec-bouncer.js';
import { CrowdsecMachine } from './crowdsec-machine.js';

export interface CrowdsecDeps {
  log: Logger;
  clock: Clock;
  metrics: Metrics;
  store: LimitStore;
  policy: () => Policy;
  /** The process's ban feed (integrations/index.ts), shared with the other integrations;
   *  absent: the machine reads one of its own. */
  feed?: BanFeed;
}

export interface RunningCrowdsec {
  bouncer: CrowdsecBouncer | null;
  machine: CrowdsecMachine | null;
  /** The ban feed the machine listens to. */
  feed: BanFeed | null;
  stop(): void;
}

/** Null without crowdsec. The first pull is awaited (a LAPI that is down is logged, and the
 *  proxy starts without decisions). */
export async function startCrowdsec(cfg: Config, deps: CrowdsecDeps): Promise<RunningCrowdsec | null> {
  const cs = cfg.crowdsec;
  if (!cs) return null;
  const bouncer = cs.bouncerKey ? new CrowdsecBouncer(cs, deps) : null;
  await bouncer?.start();
  const machine = cs.machine ? new CrowdsecMachine({ ...cs, machine: cs.machine }, deps) : null;
  const own = machine && !deps.feed ? startBanFeed(deps, cs.interval, [(diff) => machine.sync(diff)]) : null;
  if (machine && deps.feed) deps.feed.subscribe((diff) => machine.sync(diff));
  const feed = machine ? (deps.feed ?? own) : null;
  return {
    bouncer,
    machine,
    feed,
    stop() {
      bouncer?.stop();
      own?.stop();
    },
  };
}
