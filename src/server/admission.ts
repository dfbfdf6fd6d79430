// Admission at connect, before the proxy reads a byte of the protocol: a denied network, the
// connection limits, then a client IP an ip rule already blocks. One verdict type, and one
// table that says how each refusal is counted, logged and said goodbye to.
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
  /** limits.connections. */
  | { kind: 'busy'; limit: 'per-ip' | 'total' }
  /** An ip rule's block is running for this client. */
  | { kind: 'blocked'; rule: string; retryAfterSec: number };

export type Refusal = Exclude<Admission, { kind: 'welcome' }>;

export interface AdmissionEnv {
  policy: Policy;
  metrics: Metrics;
  connections: Connections;
  isDenied(address: string): boolean;
  groups?: Groups;
}

interface RefusalSpec<A extends Refusal> {
  /** mailgate_connections_refused_total's reason label. */
  metric(a: A): 'denied' | 'per-ip' | 'total' | 'blocked';
  goodbye: GoodbyeReason;
  /** The log line's reason: the config key or rule that refused. */
  why(a: A): string;
}

const REFUSALS: { [K in Refusal['kind']]: RefusalSpec<Extract<Refusal, { kind: K }>> } = {
  denied: { metric: () => 'denied', goodbye: 'denied', why: () => 'limits.deniedNetworks' },
  busy: { metric: (a) => a.limit, goodbye: 'busy', why: (a) => (a.limit === 'per-ip' ? 'limits.connections.perIp' : 'limits.connections.total') },
  blocked: { metric: () => 'blocked', goodbye: 'limited', why: (a) => a.rule },
};

/** Decides whether `conn` may speak. Once the connection limits admit it, `conn` holds a slot
 *  (welcome and blocked) until the caller releases it, when the connection ends. */
export async function admit(conn: TrackedConnection, protocol: ProtocolName, ip: string, env: AdmissionEnv, log: Logger): Promise<Admission> {
  if (env.isDenied(ip)) return { kind: 'denied' };
  const slot = await env.connections.admit(conn);
  if (slot !== 'ok') return { kind: 'busy', limit: slot };
  // Blocklists answer while the client says hello and logs in.
  const groups = env.groups?.active && !env.policy.isTrusted(ip) ? env.groups : undefined;
  groups?.prefetch(ip);
  try {
    const refused = await env.policy.connectCheck(protocol, ip, groups?.staticOf(ip));
    return refused ? { kind: 'blocked', ...refused } : { kind: 'welcome' };
  } catch (err) {
    // The store has the last word at login: a failed hint check lets the client in to ask.
    log.warn({ event: 'session.admission-failed', err: (err as Error).message }, 'connect-time block check failed; the login decides');
    return { kind: 'welcome' };
  }
}

/** Counts and logs a refusal; returns the goodbye to say. */
export function reportRefusal<A extends Refusal>(a: A, listener: string, env: Pick<AdmissionEnv, 'metrics'>, log: Logger): { reason: GoodbyeReason; retryAfterSec?: number } {
  const spec = REFUSALS[a.kind] as RefusalSpec<A>;
  env.metrics.connectionsRefused.inc({ listener, reason: spec.metric(a) });
  const retryAfterSec = a.kind === 'blocked' ? a.retryAfterSec : undefined;
  if (a.kind === 'blocked') env.metrics.refusals.inc({ rule: a.rule });
  log.info({ event: 'session.refused', reason: spec.why(a), retryAfterSec }, 'connection refused by limits');
  return { reason: spec.goodbye, retryAfterSec };
}
