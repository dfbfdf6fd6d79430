// The HTTP endpoints and integrations, for one process (main.ts) and for worker mode's primary
// (cluster/primary.ts) alike: the admin token, readiness, the admin API, the policy server on
// the running engine, the integrations (ban feed, alerts…).
import { readFileSync } from 'node:fs';
import { tcpReachable } from './backend/pool.js';
import type { Config } from './config/schema.js';
import { MailgateError } from './errors.js';
import type { Logger } from './logging/logger.js';
import { AdminServer, type AdminDeps } from './admin/server.js';
import type { Clock } from './clock.js';
import { Integrations } from './integrations/index.js';
import type { AttackMode } from './limits/attack-mode.js';
import { PolicyServer } from './policy-server/server.js';
import type { SendingLimits } from './limits/sending.js';
import type { AuthDeps } from './server/auth-path.js';

import type { LimitStore } from './stores/store.js';
import type { SessionControl } from './admin/sessions.js';
import type { KickTarget, SessionList } from './server/live-sessions.js';
import { KickChannel } from './stores/kick-channel.js';
import { startNodes } from './admin/nodes.js';
import type { NodeRegistry } from './stores/node-registry.js';

/** /readyz: a backend counts as healthy when it accepts a TCP connection this fast. */
const READY_PROBE_MS = 1_000;

export function adminToken(cfg: Config): string | null {
  if (!cfg.admin) return null;
  if (cfg.admin.token) return cfg.admin.token;
  if (!cfg.admin.tokenFile) return null;
  try {
    return readFileSync(cfg.admin.tokenFile, 'utf8').trim();
  } catch (err) {
    throw new MailgateError('MG_CONFIG_READ', `admin.tokenFile: ${(err as Error).message}`);
  }
}

/** /readyz: at least one server of every backend accepts connections. */
export async function backendsReachable(cfg: Config): Promise<boolean> {
  const backends = await Promise.all(
    Object.values(cfg.backends).map(async (b) => (await Promise.all(b.servers.map((s) => tcpReachable(s.host, s.port, READY_PROBE_MS)))).some(Boolean)),
  );
  return backends.every(Boolean);
}

/** The policy server of one process (or of worker mode's primary): the engine of the running
 *  config; the settings of its policyServer section (the started one, if a reload removes it). */
export function startPolicyServer(env: () => AuthDeps, cfg: () => Config, initial: Config, log: Logger): PolicyServer {
  return new PolicyServer(
    {
      env,
      config: () => cfg().policyServer ?? initial.policyServer!,
      backend: (name) => cfg().backends[name],
    },
    log,
  );
}

/** What logins run on, and the account limits the admin API shows. */
export type EngineDeps = AuthDeps & { sending?: SendingLimits | undefined };

/** What the process serving the endpoints lends them. */
export interface EndpointDeps {
  initial: Config;
  config(): Config;
  /** The running engine (policy, groups, metrics…), as logins use it. */
  engine(): EngineDeps;
  store: LimitStore;
  clock: Clock;
  log: Logger;
  /** This process's registry, or worker mode's aggregate. */
  metrics: AdminDeps['metrics'];
  token(): string | null;
  attackMode(): AttackMode;
  /** Every listener open (worker mode: in some worker). */
  listenersReady(): boolean;
  /** The spliced sessions of this process, or of every worker (kick: how many ended). */
  sessions?: { list(limit: number): Promise<SessionList>; kick(target: KickTarget): Promise<number> };
  /** Worker mode: the live workers (the nodes list). */
  workers?(): { slot: number; pid: number }[];
}

type Address = { host: string; port: number };

/** The HTTP endpoints and integrations of the process that serves them (one process, or worker
 *  mode's primary): the admin API, the policy server, and the integrations on their ban feed. */
export class Endpoints {
  readonly integrations: Integrations;
  private admin: AdminServer | null = null;
  private policy: PolicyServer | null = null;
  /** With a Redis store: kicks to and from the other instances. */
  private kicks: KickChannel | null = null;
  /** This node in the nodes list (GET /api/v1/nodes), beating from start to stop. */
  private nodes: NodeRegistry | null = null;
  adminAddress: Address | null = null;
  policyAddress: Address | null = null;

  constructor(private readonly deps: EndpointDeps) {
    this.integrations = new Integrations(deps.initial, { store: deps.store, policy: () => deps.engine().policy, config: deps.config, clock: deps.clock, log: deps.log });
  }

  async start(): Promise<void> {
    const { deps } = this;
    // Kicks from the other instances are heard with or without an admin endpoint here.
    const sessions = this.sessionControl();
    this.nodes = startNodes({ ...deps, metrics: () => deps.metrics.registry.metrics() });
    if (deps.initial.admin) {
      this.admin = new AdminServer(
        deps.initial.admin.listen,
        {
          attackMode: deps.attackMode,
          policy: () => deps.engine().policy,
          groups: () => deps.engine().groups,
          banlist: () => this.integrations.banlist(),
          history: () => deps.engine().history,
          sending: () => deps.engine().sending,
          store: deps.store,
          metrics: deps.metrics,
          token: deps.token,
          sessions,
          nodes: this.nodes,
          ready: async () => ({ listeners: deps.listenersReady(), store: deps.store.health?.up ?? true, backends: await backendsReachable(deps.config()) }),
        },
        deps.log,
      );
      const a = await this.admin.start();
      this.adminAddress = { host: a.address, port: a.port };
    }
    if (deps.initial.policyServer) {
      this.policy = startPolicyServer(deps.engine, deps.config, deps.initial, deps.log);
      const p = await this.policy.start();
      this.policyAddress = { host: p.address, port: p.port };
    }
    this.integrations.start();
  }

  /** A kick ends the sessions here, then tells the other instances, which end theirs. */
  private sessionControl(): SessionControl | undefined {
    const { sessions: here, initial, log } = this.deps;
    if (!here) return undefined;
    if (initial.store.type === 'redis') {
      this.kicks = new KickChannel(initial.store.redis, (target) => {
        here.kick(target).catch((err: Error) => log.error({ event: 'admin.error', err: err.message }, "could not end another instance's kicked sessions here"));
      });
    }
    return {
      list: (limit) => here.list(limit),
      kick: async (target) => ({ ended: await here.kick(target), announced: (await this.kicks?.publish(target)) ?? false }),
    };
  }

  async stop(): Promise<void> {
    await this.kicks?.close();
    await this.nodes?.close();
    await this.integrations.stop();
    await this.admin?.stop();
    await this.policy?.stop();
  }
}
