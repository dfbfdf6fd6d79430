// The primary of worker mode (workers > 1): accepts no mail connection itself. It forks the
// workers (supervisor.ts) and holds what is one thing for all of them: the memory store
// (store-host.ts), connection limits (shared-connections.ts), attack mode, block hints, the
// metrics aggregate and the admin endpoint. SIGHUP: validate the file, then reload every
// worker in two phases (all prepare, then all commit; any failure changes nothing anywhere).
// SIGTERM: every worker drains as one process would, then the primary exits 0.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { AggregatorRegistry, Counter, Gauge } from 'prom-client';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { AttackMode, logAttackModeChange } from '../limits/attack-mode.js';
import { KeyBuilder } from '../limits/keys.js';
import { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import { adminToken, Endpoints, type EngineDeps } from '../endpoints.js';
import type { Integrations } from '../integrations/index.js';
import { STORE_START_WAIT_MS } from '../main.js';
import { BackendPools } from '../backend/pool.js';
import { cidrMatcher } from '../config/address.js';
import { Tarpit } from '../limits/tarpit.js';
import { Groups } from '../groups/groups.js';
import { createMetrics } from '../metrics/metrics.js';
import { workerSessions } from './worker-sessions.js';
import { loadServerTls } from '../server/tls.js';
import { rotationOf, ticketNote, TicketRotation } from '../server/tls-tickets.js';
import { createStore } from '../stores/factory.js';
import { PortPins } from './port-pins.js';
import { reloadWorkers } from './reload.js';
import { SharedConnections } from './shared-connections.js';
import { SharedHints } from './shared-hints.js';
import { serveStore } from './store-host.js';
import { Supervisor } from './supervisor.js';
import { IPC_CALL_MS } from './worker.js';
import { startCrowdsec } from '../integrations/crowdsec-start.js';
import { relayDecisions } from '../integrations/crowdsec-relay.js';
import type { AlertEvent } from '../integrations/alerts.js';
import { AccountHistory } from '../limits/history.js';
import { sendingLimits } from '../limits/sending.js';

/** How long a worker may take to start (its first capability probes included). */
const START_MS = 120_000;
/** How long each phase of a reload may take in a worker (TLS material, listeners). */
const RELOAD_MS = 30_000;
/** A worker that does not hand over its metrics in this time is left out of that scrape. */
const METRICS_MS = 2_000;
/** Attack mode leaves on time even while no verdict arrives (every login refused). */
const ATTACK_TICK_MS = 1_000;

/** `workers: auto` is one per core the process may use. */
export function workerCount(cfg: Pick<Config, 'workers' | 'listeners'>): number {
  // A policy server alone accepts no mail connection: one process serves it.
  if (cfg.listeners.length === 0) return 1;
  return cfg.workers === 'auto' ? os.availableParallelism() : cfg.workers;
}

/** Keys a reload cannot change in a running process. */
export function restartNeeded(prev: Config, next: Config): string[] {
  const keys: string[] = [];
  if (workerCount(prev) !== workerCount(next)) keys.push('workers');
  if (JSON.stringify(prev.store) !== JSON.stringify(next.store)) keys.push(prev.store.type === next.store.type ? 'store' : 'store.type');
  if (prev.admin?.listen !== next.admin?.listen) keys.push('admin.listen');
  if (prev.policyServer?.listen !== next.policyServer?.listen) keys.push('policyServer.listen');
  if (JSON.stringify(prev.crowdsec) !== JSON.stringify(next.crowdsec)) keys.push('crowdsec');
  return keys;
}

/** A worker could not start: the primary exits with its code. */
export class WorkerStartError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

export async function runPrimary(file: string, initial: Config, log: Logger, count: number): Promise<void> {
  const clock = systemClock;
  // Before any worker: a development certificate is made here once (not by N workers at
  // once), and TLS material that does not load stops the start with exit 2.
  await loadServerTls(initial.tls, log);
  let token = adminToken(initial);
  let cfg = initial;
  const store = createStore(initial.store, clock, log);
  await store.ready?.(STORE_START_WAIT_MS);
  const pins = new PortPins();
  // Without limits.keySecret one process hashes user names with a random key of its own; the
  // workers must all hash alike, so the primary draws that key once for all of them.
  const secret = randomBytes(32).toString('base64url');
  const forWorkers = (c: Config): Promise<Config> => pins.apply(c.limits.keySecret ? c : { ...c, limits: { ...c.limits, keySecret: secret } });
  let sent = await forWorkers(initial); // what the workers run: port-0 listeners pinned

  const everyone = () => supervisor.linked;
  // Written at once: an admin block, unblock or attack-mode switch holds in every worker by
  // the time the admin API answers.
  const hints = new SharedHints(clock, (n) => everyone().forEach((h) => h.link.notify('hint', n, true)));
  let integrations: Integrations | undefined;
  const attackMode = new AttackMode(initial.limits.attackMode, clock, (status, reason) => {
    logAttackModeChange(log, status, reason);
    integrations?.attackMode(status.active);
    for (const h of everyone()) h.link.notify('attack-mode', { active: status.active }, true);
  });
  const attackTick = setInterval(() => attackMode.active, ATTACK_TICK_MS);
  const tickets = new TicketRotation(rotationOf(initial.tls), (k) => everyone().forEach((h) => h.link.notify('tls.ticket-keys', ticketNote(k)))); // one set for all workers
  const policyFor = (c: Config) => new Policy(c.limits, store, new KeyBuilder(c.limits.keySecret), clock, () => attackMode.active, hints);
  let policy = policyFor(sent);
  let queue = Promise.resolve();
  const serial = (task: () => Promise<void>) => (queue = queue.then(task).catch((err: Error) => log.error({ event: 'config.reload', error: err.message }, 'primary task failed')));

  const linkOf = (worker: number) => {
    const h = everyone().find((x) => x.worker.id === worker);
    if (!h) throw new Error(`worker ${worker} is gone`);
    return h.link;
  };
  const tracker = new SharedConnections(() => cfg.limits.connections, count, () => everyone().map((h) => h.worker.id), {
    central: async (w, key) => linkOf(w).call('conn.central', { key }, IPC_CALL_MS),
    oldest: async (w) => linkOf(w).call('conn.oldest', null, IPC_CALL_MS),
    evictOwn: async (w) => linkOf(w).call('conn.evict-own', null, IPC_CALL_MS),
    evict: async (w, cid) => linkOf(w).call('evict', { cid }, IPC_CALL_MS),
    local: (w, key) => everyone().find((x) => x.worker.id === w)?.link.notify('conn.local', { key }),
  });
  const metrics = createMetrics({ storeHealth: () => store.health ?? { up: true, fallbacks: 0 }, attackMode: () => attackMode.status() });
  new Gauge({
    name: 'mailgate_workers',
    help: 'Worker processes serving (workers: N); fewer while one restarts.',
    registers: [metrics.registry],
    collect() {
      this.set(supervisor.live.length);
    },
  });
  const restarts = new Counter({ name: 'mailgate_worker_restarts_total', help: 'Workers restarted after they exited on their own (a crash, a kill).', registers: [metrics.registry] });

  const supervisor = new Supervisor(count, {
    log,
    serial,
    onRestart: () => restarts.inc(),
    link(h) {
      serveStore(h.link, store, log);
      const id = h.worker.id;
      h.link.handle('conn.admit', ({ cid, key, share }) => tracker.admit(id, cid, key, share));
      h.link.on('conn.release', ({ cid }) => tracker.release(id, cid));
      h.link.on('conn.own-release', ({ key, ip, total }) => tracker.releaseOwn(id, key, { ip, total }));
      h.link.on('conn.held', ({ key, n }) => tracker.told(id, key, n));
      h.link.on('conn.held-all', (report) => tracker.centralAll(id, report));
      h.link.on('conn.spliced', ({ cid }) => tracker.spliced(id, cid));
      h.link.on('hint', (n) => {
        hints.apply(n);
        for (const o of everyone()) if (o !== h) o.link.notify('hint', n, true);
      });
      h.link.on('alert', alert);
      h.link.on('verdicts', ({ ok, fail }) => {
        for (let i = 0; i < ok; i++) attackMode.record('ok');
        for (let i = 0; i < fail; i++) attackMode.record('fail');
      });
    },
    async start(h) {
      relay?.welcome(h.link); // CrowdSec's decisions before the worker's first connection
      h.link.notify('tls.ticket-keys', ticketNote(tickets.current));
      const r = await h.link.call('start', { cfg: sent }, START_MS);
      if (!r.ok) throw new WorkerStartError(`worker ${h.slot}: ${r.error}`, r.exitCode);
      h.report = r.report;
      h.link.notify('attack-mode', { active: attackMode.active });
    },
    exited: (h) => tracker.dropWorker(h.worker.id),
  });

  async function clusterMetrics(): Promise<string> {
    const parts = await Promise.allSettled(supervisor.live.map((h) => h.link.call('metrics', null, METRICS_MS)));
    const all = [await metrics.registry.getMetricsAsJSON(), ...parts.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []))];
    return AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
  }

  // The policy server is the primary's (the workers serve mail): the engine of every worker,
  // with backend pools of its own for nginx's logins.
  const pools = new BackendPools(() => cfg.backends, log);
  const tarpit = new Tarpit(clock);
  // Its own address groups, for the policy server and the admin API (each worker reads its own).
  let groups = new Groups(initial.limits, { log, clock, metrics });
  groups.watch();
  const alert = (e: AlertEvent) => integrations?.alerts?.emit(e);
  const engine = (): EngineDeps => ({
    policy, clock, metrics, tarpit, pools, attackMode, groups,
    isDenied: cidrMatcher(cfg.limits.deniedNetworks),
    history: new AccountHistory(store, policy.keys, clock, cfg, log, alert),
    sending: sendingLimits(cfg, store, policy.keys, clock, log, alert, metrics) ?? undefined,
  });
  // The admin API, the policy server and the integrations are the primary's.
  const endpoints = new Endpoints({
    initial,
    config: () => cfg,
    engine,
    store,
    clock,
    log,
    metrics: { registry: { metrics: clusterMetrics, contentType: metrics.registry.contentType } },
    token: () => token,
    attackMode: () => attackMode,
    listenersReady: () => supervisor.live.some((h) => h.report?.failed.length === 0),
    sessions: workerSessions(() => supervisor.live, METRICS_MS),
    workers: () => supervisor.live.map((h) => ({ slot: h.slot, pid: h.worker.process.pid ?? 0 })),
  });
  integrations = endpoints.integrations;
  // One LAPI client for all: the primary pulls CrowdSec's decisions and relays them.
  const crowdsec = await startCrowdsec(initial, { log, clock, metrics, store, policy: () => policy, feed: integrations.feed });
  const relay = crowdsec?.bouncer ? relayDecisions(crowdsec.bouncer, everyone) : null;

  async function cleanUp(): Promise<void> {
    clearInterval(attackTick);
    tickets.stop();
    crowdsec?.stop();
    await endpoints.stop().catch(() => undefined);
    groups.close();
    pools.stop();
    tarpit.close();
    await pins.release();
    await store.close();
  }

  try {
    await endpoints.start();
    if (initial.policyServer) pools.start();
    await supervisor.startAll();
  } catch (err) {
    await supervisor.stop(0);
    await cleanUp();
    throw err;
  }
  await pins.release();
  log.info({ event: 'proxy.start', workers: count, listeners: cfg.listeners.length, store: cfg.store.type, pid: process.pid }, 'mailgate started');

  async function reload(): Promise<void> {
    let next: Config;
    let nextToken: string | null;
    try {
      next = loadConfig(file);
      nextToken = adminToken(next);
      await loadServerTls(next.tls, log);
    } catch (err) {
      metrics.reloads.inc({ result: 'invalid' });
      log.error({ event: 'config.reload', error: (err as Error).message }, 'reload refused: invalid config, keeping the running one');
      return;
    }
    const later = restartNeeded(cfg, next);
    if (later.length) log.warn({ event: 'config.reload', restartNeeded: later }, `${later.join(', ')} changed: takes effect after a restart`);
    const nextSent = await forWorkers(next);
    const live = supervisor.live;
    // A worker's share of the old limits bounds nothing under new ones: every worker reports
    // what it holds and admits through the primary from now on (until a restart).
    if (JSON.stringify(next.limits.connections) !== JSON.stringify(cfg.limits.connections)) {
      // Each report reaches the tracker as a note (conn.held-all), in order with releases.
      const told = await Promise.allSettled(live.map((h) => h.link.call('conn.central-all', null, RELOAD_MS)));
      const failed = told.find((t) => t.status === 'rejected');
      if (failed) {
        metrics.reloads.inc({ result: 'invalid' });
        log.error({ event: 'config.reload', error: (failed.reason as Error).message }, 'reload failed, keeping the running configuration in every worker');
        return;
      }
    }
    const outcome = await reloadWorkers(live, nextSent, RELOAD_MS);
    await pins.release();
    if (!outcome.ok) {
      metrics.reloads.inc({ result: 'invalid' });
      log.error({ event: 'config.reload', error: `worker ${outcome.slot}: ${outcome.error}` }, 'reload failed, keeping the running configuration in every worker');
      return;
    }
    cfg = next;
    sent = nextSent;
    token = nextToken;
    policy = policyFor(nextSent);
    try {
      const nextGroups = new Groups(next.limits, { log, clock, metrics }, groups);
      groups.close();
      groups = nextGroups;
      groups.watch();
    } catch (err) {
      log.error({ event: 'groups.error', error: (err as Error).message }, "the primary keeps its address groups (the workers' reloaded)");
    }
    attackMode.reconfigure(next.limits.attackMode);
    tickets.retime(rotationOf(next.tls));
    log.level = next.log.level;
    outcome.reports.forEach((r, i) => r && (live[i]!.report = r));
    const notOpen = [...new Set(outcome.reports.flatMap((r) => r?.failed ?? []))];
    metrics.reloads.inc({ result: 'ok' });
    log.info({ event: 'config.reload', workers: live.length, listeners: next.listeners.length, failed: notOpen }, 'configuration reloaded');
  }

  process.on('SIGHUP', () => void serial(reload));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await supervisor.stop(cfg.timeouts.shutdown);
      await cleanUp();
      log.info({ event: 'proxy.stop' }, 'mailgate stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
