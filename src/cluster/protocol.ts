// The messages between the primary and its workers (node:cluster IPC, JSON): one envelope for
// calls, replies and one-way notes, and per direction a table of what may be asked and told.
// Types and one guard only: no I/O.
import type { Config } from '../config/schema.js';
import type { CsDelta } from '../integrations/crowdsec-decisions.js';
import type { KickTarget, SessionList } from '../server/live-sessions.js';
import type { BlockEntry, CounterSpec, CounterState, HitOptions, HitResult, RecordBounds, RecordEntry, SendingBounds, SendingCounts, SettleRequest } from '../stores/store.js';
import type { AlertEvent } from '../integrations/alerts.js';

/** Every mailgate message carries `mg`, so the channel ignores anything else on the same IPC
 *  (node's own cluster messages, another library's). */
export type Envelope =
  | { mg: 'call'; id: number; op: string; args: unknown }
  | { mg: 'reply'; id: number; ok: true; value: unknown }
  | { mg: 'reply'; id: number; ok: false; error: string }
  | { mg: 'note'; op: string; args: unknown };

export function isEnvelope(m: unknown): m is Envelope {
  if (typeof m !== 'object' || m === null) return false;
  const e = m as { mg?: unknown; id?: unknown; op?: unknown };
  if (e.mg === 'note') return typeof e.op === 'string';
  if (e.mg === 'call') return typeof e.id === 'number' && typeof e.op === 'string';
  return e.mg === 'reply' && typeof e.id === 'number';
}

/** What a side may ask, with the answer it gets. */
export type CallTable = Record<string, { args: unknown; result: unknown }>;
/** What a side may tell without an answer. */
export type NoteTable = Record<string, unknown>;

export type ConnAdmission = 'ok' | 'per-ip' | 'total';

/** A connect-time block hint (limits/block-hints.ts) learnt or dropped by one process. */
export type HintNote = { op: 'note'; key: string; forMs: number } | { op: 'forget'; key: string };

/** A worker's listeners after a start or a reload. */
export interface ListenerReport {
  addresses: Record<string, { host: string; port: number }>;
  /** Listeners that could not be opened (a reload's new port in use). */
  failed: string[];
}

/** The primary's memory store, asked by the workers (stores/store.ts LimitStore). */
export type StoreCalls = {
  'store.hit': { args: [specs: CounterSpec[], opts?: HitOptions]; result: HitResult };
  'store.settle': { args: [specs: CounterSpec[], req: SettleRequest]; result: number[] };
  'store.peek': { args: [key: string]; result: CounterState };
  'store.blocks': { args: []; result: BlockEntry[] };
  'store.reset': { args: [key: string]; result: null };
  'store.block': { args: [key: string, ms: number]; result: null };
  /** Login history (limits/history.ts). */
  'store.history': { args: [key: string]; result: RecordEntry[] };
  'store.take': { args: [key: string, field: string]; result: boolean };
  /** Sending limits (limits/sending.ts): a call each, the checks and the alert read the answer. */
  'store.sending-peek': { args: [countsKey: string, knownKey: string, prints: string[], at: { atMs: number; knownTtlMs: number }]; result: SendingCounts & { known: boolean[] } };
  'store.sending-add': { args: [countsKey: string, knownKey: string, prints: string[], bounds: SendingBounds]; result: SendingCounts & { added: number } };
  'store.sending-reset': { args: [countsKey: string, knownKey?: string]; result: null };
};

/** Worker → primary. */
export type WorkerCalls = StoreCalls & {
  /** Connection limits: may this connection (cid, unique in the worker) from `key` open?
   *  `share`: the limits it already fits in on the worker's share (only the others asked). */
  'conn.admit': { args: { cid: number; key: string; share?: { ip: boolean; total: boolean } }; result: ConnAdmission };
};
export type WorkerNotes = {
  /** The worker listens for calls now. */
  hello: { pid: number };
  'conn.release': { cid: number };
  /** One less on this worker's share of the address and/or the total, for a pool the primary
   *  made central (a connection on it ended, or was not admitted). */
  'conn.own-release': { key: string; ip: boolean; total: boolean };
  /** The answer to conn.central (null: the total) as a note before the reply, so it is
   *  counted in order with this worker's own-release notes. */
  'conn.held': { key: string | null; n: number };
  /** The same for conn.central-all. */
  'conn.held-all': { keys: [string, number][]; total: number };
  /** The connection logged in: never evicted for the total from now on. */
  'conn.spliced': { cid: number };
  hint: HintNote;
  /** store.settle whose counts are not read (SettleRequest.countsUnread): no reply. A settle's
   *  history row (SettleRequest.record, here and in store.settle) is written after it. */
  'store.settled': [specs: CounterSpec[], req: SettleRequest];
  /** historyAdd (login history that no settle carried): no reply. */
  'store.record': { key: string; field: string; bounds: RecordBounds };
  /** An account event (new-network, retired-password, sending-limit) for the primary's alert
   *  webhooks. */
  alert: AlertEvent;
  /** Backend verdicts since the last note, for the primary's attack-mode detector. */
  verdicts: { ok: number; fail: number };
};

/** Primary → worker. */
export type PrimaryCalls = {
  /** Run the proxy; a failure says how the primary exits if this is the first start. */
  start: { args: { cfg: Config }; result: { ok: true; report: ListenerReport } | { ok: false; error: string; exitCode: 1 | 2 } };
  /** Reload in two phases: every worker builds the new config (TLS material, policy) first;
   *  only if all could does any apply it. */
  prepare: { args: { cfg: Config }; result: null };
  commit: { args: null; result: ListenerReport };
  abort: { args: null; result: null };
  /** prom-client's registry.getMetricsAsJSON(), for the AggregatorRegistry. */
  metrics: { args: null; result: unknown[] };
  /** Evict this connection for the total if it is still before login; false: it is not. */
  evict: { args: { cid: number }; result: boolean };
  /** The worker's spliced sessions (the admin API's list), at most `limit`, with its total. */
  sessions: { args: { limit: number }; result: SessionList };
  /** End the worker's sessions of that user or address (an admin kick); how many. */
  kick: { args: KickTarget; result: number };
  /** Connection limits beyond a worker's share (shared-connections.ts): how many of this
   *  address's (null: of all) connections the worker holds on its share; from now on it admits
   *  them through the primary and tells it when one of them ends. */
  'conn.central': { args: { key: string | null }; result: number };
  /** The same for every address and the total, for good (the limits are about to change). */
  'conn.central-all': { args: null; result: { keys: [string, number][]; total: number } };
  /** When the worker's oldest own connection still before login was admitted (ms), or null. */
  'conn.oldest': { args: null; result: number | null };
  /** Evict the worker's oldest own connection still before login; false: none. */
  'conn.evict-own': { args: null; result: boolean };
};
export type PrimaryNotes = {
  hint: HintNote;
  /** The address (null: the total) is back to shares: admit within them again. */
  'conn.local': { key: string | null };
  'attack-mode': { active: boolean };
  /** CrowdSec decisions pulled by the primary (integrations/crowdsec-relay.ts): the full set
   *  (reset) before a worker starts, then every change. */
  crowdsec: CsDelta;
  /** The TLS session-ticket keys every worker seals and opens tickets with (server/
   *  tls-tickets.ts), base64 of 48 bytes: before a worker starts, then at each rotation. A
   *  secret: never logged. */
  'tls.ticket-keys': { keys: string };
  /** Drain and exit (SIGTERM reached the primary). */
  shutdown: null;
};
