// What a session needs from the running proxy: the current config's policy and limits, the
// shared metrics, tarpit, pools and connection limits. Built by main.ts per config (reload
// swaps it for new sessions); types only.
import type { BackendPools } from '../backend/pool.js';
import type { Clock } from '../clock.js';
import type { AttackMode } from '../limits/attack-mode.js';
import type { Groups } from '../groups/groups.js';
import type { AccountHistory } from '../limits/history.js';
import type { Policy } from '../limits/policy.js';
import type { SendingLimits } from '../limits/sending.js';
import type { Tarpit } from '../limits/tarpit.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Connections } from './connections.js';
import type { FrontDoor } from './front-door.js';
import type { LiveSessions } from './live-sessions.js';
import type { ServerTls } from './tls.js';

export interface SessionEnv {
  policy: Policy;
  metrics: Metrics;
  tarpit: Tarpit;
  pools: BackendPools;
  clock: Clock;
  /** Learns from the backend's verdicts: this process's detector, or the primary's (workers). */
  attackMode?: Pick<AttackMode, 'record'>;
  frontDoor?: FrontDoor;
  tls: ServerTls | null;
  maxBadCommands: number;
  maxAuthAttempts: number;
  timeouts: { preauth: number; tlsHandshake: number; idle: number };
  /** The backend's advertised capabilities as last probed (empty when unknown). */
  capabilities(backendName: string): readonly string[];
  /** limits.trustedProxies: peers allowed to send a PROXY header. */
  isTrustedProxy(address: string | undefined): boolean;
  /** limits.deniedNetworks: clients turned away at connect. */
  isDenied(address: string): boolean;
  /** Concurrent connection limits, shared by every listener. */
  connections: Connections;
  /** The client key connection limits count (ipv6Prefix grouping). */
  clientKey(ip: string): string;
  /** Address groups of this config (limits.groups, geoip, dnsbl). */
  groups?: Groups;
  /** Login history and account events (history, notify). */
  history?: AccountHistory;
  /** limits.sending: what an account may send through submission (absent: not tracked). */
  sending?: SendingLimits;
  /** CrowdSec's decisions: clients they ban are turned away at connect (admission.ts). */
  crowdsec?: { refuses(ip: string): { origin: string; scenario: string; untilMs: number } | null };
  /** The process's spliced sessions (the admin API's list and kick), kept across reloads. */
  sessions?: LiveSessions;
}

