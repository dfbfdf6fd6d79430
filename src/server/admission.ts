// Admission at connect, before the proxy reads a byte of the protocol: a denied network, a
// CrowdSec decision, the connection limits, then a client IP an ip rule already blocks. One verdict type, and one
// table that says how each refusal is counted, logged and said goodbye to.
import type { Clock } from '../clock.js';
import type { ProtocolName } from '../config/schema.js';
import type { Groups } from '../groups/groups.js';
import type { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { GoodbyeReason } from '../protocols/protocol.js';
import type { Connections, TrackedConnection } from './connections.js';

export type Admission =
  | { kind: 'welcome' }
  /** limits.deniedNetworks. */
  | { kind: 'denied' }
  /** A CrowdSec decision (crowdsec.bouncerKey): `scenario` as CrowdSec names it. */
  | { kind: 'crowdsec'; origin: string; scenario: string; retryAfterSec: number }
  /** limits.connections. */
  | { kind: 'busy'; limit: 'per-ip' | 'total' }
  /** An ip rule's block is running for this client. */
  | { kind: 'blocked'; rule: string; retryAfterSec: number };

export type Refusal = Exclude<Admission, { kind: 'welcome' }>;

export interface AdmissionEnv {
  policy: Policy;
  clock: Clock;
  metrics: Metrics;
  connections: Connections;
  isDenied(address: string): boolean;
  groups?: Groups;
  /** CrowdSec's decisions (this process's bouncer, or the primary's relayed to a worker). */
  crowdsec?: { refuses(ip: string): { origin: string; scenario: string; untilMs: number } | null };
}

interface RefusalSpec<A extends Refusal> {
  /** mailgate_connections_refused_total's reason label. */
  metric(a: A): 'denied' | 'crowdsec' | 'per-ip' | 'total' | 'blocked';
  goodbye: GoodbyeReason;
  /** The log line's reason: the config key or rule that refused. */
  why(a: A): string;
}

const REFUSALS: { [K in Refusal['kind']]: RefusalSpec<Extract<Refusal, { kind: K }>> } = {
  denied: { metric: () => 'denied', goodbye: 'denied', why: () => 'limits.deniedNetworks' },
  crowdsec: { metric: () => 'crowdsec', goodbye: 'limited', why: () => 'crowdsec' },
  busy: { metric: (a) => a.limit, goodbye: 'busy', why: (a) => (a.limit === 'per-ip' ? 'limits.connections.perIp' : 'limits.connections.total') },
  blocked: { metric: () => 'blocked', goodbye: 'limited', why: (a) => a.rule },
};

/** Decides whether `conn` may speak. Once the connection limits admit it, `conn` holds a slot
 *  (welcome and blocked) until the caller releases it, when the connection ends. */
/** `log`: the session's logger, asked for only when there is a line to write. */
export async function admit(conn: TrackedConnection, protocol: ProtocolName, ip: string, env: AdmissionEnv, log: () => Logger): Promise<Admission> {
  if (env.isDenied(ip)) return { kind: 'denied' };
  // Before the connection limits: a client CrowdSec bans holds no slot. trustedNetworks are
  // never refused (as with mailgate's own blocks).
  const cs = env.crowdsec?.refuses(ip);
  if (cs && !env.policy.isTrusted(ip)) return { kind: 'crowdsec', origin: cs.origin, scenario: cs.scenario, retryAfterSec: Math.max(1, Math.ceil((cs.untilMs - env.clock.now()) / 1000)) };
  const slot = await env.connections.admit(conn);
  if (slot !== 'ok') return { kind: 'busy', limit: slot };
  const groups = env.groups?.active && !env.policy.isTrusted(ip) ? env.groups : undefined;
  try {
    const refused = await env.policy.connectCheck(protocol, ip, groups?.staticOf(ip));
    if (refused) return { kind: 'blocked', ...refused };
  } catch (err) {
    // The store has the last word at login: a failed hint check lets the client in to ask.
    log().warn({ event: 'session.admission-failed', err: (err as Error).message }, 'connect-time block check failed; the login decides');
  }
  // Blocklists answer while the client says hello and logs in (not asked for a client
  // turned away here).
  groups?.prefetch(ip);
  return { kind: 'welcome' };
}

/** Counts and logs a refusal; returns the goodbye to say. */
export function reportRefusal<A extends Refusal>(a: A, listener: string, env: Pick<AdmissionEnv, 'metrics'>, log: Logger): { reason: GoodbyeReason; retryAfterSec?: number } {
  const spec = REFUSALS[a.kind] as RefusalSpec<A>;
  env.metrics.connectionsRefused.inc({ listener, reason: spec.metric(a) });
  const retryAfterSec = a.kind === 'blocked' || a.kind === 'crowdsec' ? a.retryAfterSec : undefined;
  if (a.kind === 'blocked') env.metrics.refusals.inc({ rule: a.rule });
  const cs = a.kind === 'crowdsec' ? { origin: a.origin, scenario: a.scenario } : {};
  log.info({ event: 'session.refused', reason: spec.why(a), retryAfterSec, ...cs }, 'connection refused by limits');
  return { reason: spec.goodbye, retryAfterSec };
}
