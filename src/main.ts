// Composition root: config in; logger, store, policy, listeners, admin endpoint out. Owns the
// running configuration, so reload (SIGHUP) and shutdown (SIGTERM) live here too. In a cluster
// worker (cluster/worker.ts) the primary lends what is one thing for all (WorkerShare) and
// serves the admin endpoint itself.
import { randomBytes } from 'node:crypto';
import { CapabilityCache } from './backend/capabilities.js';
import { BackendPools } from './backend/pool.js';
import { systemClock, type Clock } from './clock.js';
import { cidrMatcher } from './config/address.js';
import type { Config, ListenerConfig } from './config/schema.js';
import { clientKey, KeyBuilder } from './limits/keys.js';
import { Policy } from './limits/policy.js';
import { AccountHistory, type EmitAlert } from './limits/history.js';
import { sendingLimits } from './limits/sending.js';
import { AttackMode, logAttackModeChange } from './limits/attack-mode.js';
import type { BlockHints } from './limits/block-hints.js';
import { Tarpit } from './limits/tarpit.js';
import { createLogger, type Logger } from './logging/logger.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { PROTOCOLS, probeTargets } from './registry.js';
import { ConnectionTracker, type Connections } from './server/connections.js';
import { FrontDoor, logSingleSource } from './server/front-door.js';
import { Listener } from './server/listener.js';
import { LiveSessions } from './server/live-sessions.js';
import type { SessionEnv } from './server/env.js';
import { loadServerTls } from './server/tls.js';
import { ownTickets, type TicketSource } from './server/tls-tickets.js';
import { createStore } from './stores/factory.js';
import { adminToken, Endpoints } from './endpoints.js';
import type { Integrations } from './integrations/index.js';
import { Groups } from './groups/groups.js';
import type { LimitStore } from './stores/store.js';
import { startCrowdsec } from './integrations/crowdsec-start.js';

/** How long start-up waits for a shared store before going on without it. */
export const STORE_START_WAIT_MS = 3_000;

/** What a cluster worker gets from the primary instead of making its own. */
export interface WorkerShare {
  /** The primary's memory store over IPC; absent: the configured store (Redis) of its own. */
  store?: LimitStore;
  connections: Connections;
  /** The primary's attack-mode detector, as this worker sees it. */
  attackMode: { readonly active: boolean; record(outcome: 'ok' | 'fail'): void };
  /** Connect-time block hints shared with the other workers. */
  hints: BlockHints;
  /** The primary's CrowdSec decisions (relayed); absent without crowdsec.bouncerKey. */
  crowdsec?: SessionEnv['crowdsec'];
  /** Account events (notify), for the primary's alert webhooks. */ alert?: EmitAlert;
  /** TLS session-ticket keys as the primary draws them for every worker. */ tickets: TicketSource;
}

export interface ProxyOptions {
  log?: Logger;
  clock?: Clock;
  /** Set in a cluster worker: listeners bind with SO_REUSEPORT, no admin endpoint. */
  worker?: WorkerShare;
}

/** The listeners after a reload. */
export interface ReloadReport {
  addresses: Record<string, { host: string; port: number }>;
  failed: string[];
}

export interface Proxy {
  readonly listeners: Listener[];
  /** Bound addresses by listener name (useful with port 0 in tests). */
  readonly addresses: Record<string, { host: string; port: number }>;
  readonly admin: { host: string; port: number } | null;
  /** The policy server's address (policyServer), null without one or in a worker. */
  readonly policyServer: { host: string; port: number } | null;
  readonly store: LimitStore;
  readonly metrics: Metrics;
  /** The process's spliced sessions (admin list and kick). */
  readonly sessions: LiveSessions;
  /** Apply a new, already validated config to new logins; spliced sessions are untouched. */
  reload(cfg: Config): Promise<void>;
  /** reload in two steps: build what the config needs (TLS material, policy; throws if it
   *  cannot), then commit() applies it. Workers all prepare before any commits. */
  prepareReload(cfg: Config): Promise<{ commit(): Promise<ReloadReport> }>;
  /** Stop accepting, say goodbye before login, let spliced sessions run up to graceMs. */
  shutdown(graceMs?: number): Promise<void>;
  /** Immediate stop (tests). */
  stop(): Promise<void>;
}

const sameListener = (a: ListenerConfig, b: ListenerConfig) => JSON.stringify(a) === JSON.stringify(b);

export async function startProxy(initial: Config, opts: ProxyOptions = {}): Promise<Proxy> {
  const log = opts.log ?? createLogger(initial.log.level);
  const clock = opts.clock ?? systemClock;
  const shared = opts.worker;
  const store = shared?.store ?? createStore(initial.store, clock, log);
  // Give a shared store a moment to connect so the first logins are counted where they
  // should be; if it cannot, the configured onError applies until it can.
  await store.ready?.(STORE_START_WAIT_MS);
  // Attack mode and the front-door watch learn from traffic over time: one each per process
  // (attack mode: the primary's, for all workers), kept across reloads (a reload retunes
  // attack mode, it does not forget its baseline).
  let integrationsOf: Integrations | undefined;
  const attackMode = shared
    ? null
    : new AttackMode(initial.limits.attackMode, clock, (status, reason) => {
        logAttackModeChange(log, status, reason);
        integrationsOf?.attackMode(status.active);
      });
  const attack = shared?.attackMode ?? attackMode!;
  const frontDoor = new FrontDoor(clock, (s) => logSingleSource(log, s));
  const metrics = createMetrics({
    storeHealth: () => store.health ?? { up: true, fallbacks: 0 },
    attackMode: () => attackMode?.status() ?? null,
    frontDoor: () => frontDoor.suspicious !== null,
  });
  const tarpit = new Tarpit(clock);
  const pools = new BackendPools(() => current.cfg.backends, log);
  // Shared by every listener; reads the limits of the running config, so reload applies.
  const connections = shared?.connections ?? new ConnectionTracker(() => current.cfg.limits.connections);
  const capabilities = new CapabilityCache(probeTargets(initial), log);
  const sessions = new LiveSessions(log, metrics);
  await capabilities.start();

  // Without limits.keySecret user names are hashed with a key drawn once per process: a
  // reload must not draw another, or every user counter and known-good pair is forgotten.
  const processSecret = randomBytes(32).toString('base64url');
  // Likewise the TLS ticket keys: a reload keeps them, or every client's ticket is void.
  const tickets = shared?.tickets ?? ownTickets(initial.tls);
  const alert: EmitAlert = (e) => (shared?.alert ? shared.alert(e) : integrationsOf?.alerts?.emit(e));
  async function buildEnv(cfg: Config, previous?: Groups): Promise<{ env: SessionEnv; token: string | null }> {
    const serverTls = await loadServerTls(cfg.tls, log, tickets.keys);
    // Lists, files and databases are read now: a reload reads them again.
    const groups = new Groups(cfg.limits, { log, clock, metrics }, previous);
    const keys = new KeyBuilder(cfg.limits.keySecret ?? processSecret);
    return {
      token: adminToken(cfg),
      env: {
        policy: new Policy(cfg.limits, store, keys, clock, () => attack.active, shared?.hints),
        history: new AccountHistory(store, keys, clock, cfg, log, alert),
        sending: sendingLimits(cfg, store, keys, clock, log, alert, metrics) ?? undefined,
        attackMode: attack,
        frontDoor,
        metrics,
        tarpit,
        pools,
        clock,
        tls: serverTls,
        maxBadCommands: cfg.limits.maxBadCommands,
        maxAuthAttempts: cfg.limits.maxAuthAttempts,
        timeouts: cfg.timeouts,
        capabilities: (backend) => capabilities.get(backend),
        isTrustedProxy: cidrMatcher(cfg.limits.trustedProxies),
        isDenied: cidrMatcher(cfg.limits.deniedNetworks),
        connections,
        clientKey: (ip) => clientKey(ip, cfg.limits.ipv6Prefix),
        groups,
        sessions,
        // The bouncer (started below, before any listener opens) pulls in one process only.
        crowdsec: shared?.crowdsec ?? (initial.crowdsec?.bouncerKey ? { refuses: (ip) => crowdsec?.bouncer?.refuses(ip) ?? null } : undefined),
      },
    };
  }

  let current = { cfg: initial, ...(await buildEnv(initial)) };
  current.env.groups?.watch();
  const listeners = new Map<string, Listener>();
  const addresses: Proxy['addresses'] = {};

  async function open(l: ListenerConfig): Promise<void> {
    const listener = new Listener(l, PROTOCOLS[l.protocol], () => current.env, log, { reusePort: shared !== undefined });
    const addr = await listener.listen();
    addresses[l.name] = { host: addr.address, port: addr.port };
    listeners.set(l.name, listener);
  }

  async function close(name: string): Promise<void> {
    const l = listeners.get(name);
    listeners.delete(name);
    delete addresses[name];
    await l?.close(); // stops accepting; its sessions go on until they end
  }

  // A worker has no endpoints (nor attack mode of its own): the primary serves them.
  const endpoints = attackMode
    ? new Endpoints({
        initial,
        config: () => current.cfg,
        engine: () => current.env,
        store,
        clock,
        log,
        metrics,
        token: () => current.token,
        attackMode: () => attackMode,
        listenersReady: () => [...listeners.values()].every((l) => l.listening),
        sessions: { list: async (limit) => sessions.list(limit), kick: async (target) => sessions.kick(target) },
      })
    : null;
  integrationsOf = endpoints?.integrations;
  const crowdsec = shared ? null : await startCrowdsec(initial, { log, clock, metrics, store, policy: () => current.env.policy, feed: integrationsOf?.feed });
  try {
    for (const l of initial.listeners) await open(l);
    await endpoints?.start();
  } catch (err) {
    capabilities.stop();
    crowdsec?.stop();
    await Promise.all([...listeners.keys()].map(close));
    await endpoints?.stop();
    await store.close();
    throw err;
  }
  pools.start();
  if (shared) log.info({ event: 'worker.start', pid: process.pid, listeners: listeners.size, store: initial.store.type }, 'worker started');
  else log.info({ event: 'proxy.start', listeners: listeners.size, store: initial.store.type }, 'mailgate started');

  let stopping = false;
  async function finish(graceMs: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    const all = [...listeners.values()];
    await Promise.all([...listeners.keys()].map(close));
    for (const l of all) l.goodbyePreauth();
    const drained = Promise.all(all.map((l) => l.drained()));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([drained.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (late) {
      log.warn({ event: 'proxy.shutdown', graceMs }, 'cutting spliced sessions still open after the grace period');
      for (const l of all) l.shutdownSessions();
    }
    await endpoints?.stop();
    capabilities.stop();
    crowdsec?.stop();
    pools.stop();
    tarpit.close();
    tickets.stop();
    current.env.groups?.close();
    await store.close();
    if (shared) log.info({ event: 'worker.stop' }, 'worker stopped');
    else log.info({ event: 'proxy.stop' }, 'mailgate stopped');
  }

  async function prepareReload(cfg: Config): Promise<{ commit(): Promise<ReloadReport> }> {
    const next = { cfg, ...(await buildEnv(cfg, current.env.groups)) };
    return { commit: () => commit(next) };
  }

  async function commit(next: typeof current): Promise<ReloadReport> {
    const { cfg } = next;
    // In worker mode the primary says what needs a restart, once.
    if (!shared && JSON.stringify(cfg.store) !== JSON.stringify(current.cfg.store)) log.warn({ event: 'config.reload' }, 'store settings changed: they take effect after a restart');
    if (!shared && JSON.stringify(cfg.admin) !== JSON.stringify(current.cfg.admin) && cfg.admin?.listen !== current.cfg.admin?.listen) log.warn({ event: 'config.reload' }, 'admin.listen changed: it takes effect after a restart');
    if (!shared && cfg.policyServer?.listen !== current.cfg.policyServer?.listen) log.warn({ event: 'config.reload' }, 'policyServer.listen changed: it takes effect after a restart');
    if (!shared && JSON.stringify(cfg.crowdsec) !== JSON.stringify(current.cfg.crowdsec)) log.warn({ event: 'config.reload' }, 'crowdsec changed: it takes effect after a restart');
    const previous = current;
    current = next;
    previous.env.groups?.close();
    current.env.groups?.watch();
    attackMode?.reconfigure(cfg.limits.attackMode);
    tickets.retime(cfg.tls);
    log.level = cfg.log.level;
    capabilities.retarget(probeTargets(cfg));
    const wanted = new Map(cfg.listeners.map((l) => [l.name, l]));
    for (const [name, l] of [...listeners]) {
      const w = wanted.get(name);
      if (!w || !sameListener(w, l.cfg)) await close(name);
    }
    const failed: string[] = [];
    for (const l of cfg.listeners) {
      if (listeners.has(l.name)) continue;
      await open(l).catch((err: Error) => {
        failed.push(l.name);
        log.error({ event: 'listener.error', listener: l.name, error: err.message }, 'could not open listener');
      });
    }
    const msg = shared ? 'worker configuration reloaded' : 'configuration reloaded';
    log.info({ event: 'config.reload', listeners: listeners.size, failed }, msg);
    return { addresses: { ...addresses }, failed };
  }

  return {
    get listeners() {
      return [...listeners.values()];
    },
    addresses,
    get admin() {
      return endpoints?.adminAddress ?? null;
    },
    get policyServer() {
      return endpoints?.policyAddress ?? null;
    },
    store,
    metrics,
    sessions,
    async reload(cfg: Config) {
      await (await prepareReload(cfg)).commit();
    },
    prepareReload,
    shutdown: (graceMs = current.cfg.timeouts.shutdown) => finish(graceMs),
    stop: () => finish(0),
  };
}
