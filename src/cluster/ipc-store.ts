// In a worker: the limit store that is the primary's memory store, asked over IPC, so a limit
// of 4 is 4 across every worker. Each call has the channel's deadline; a late or lost answer
// is an error like an unreachable Redis, which the resilient wrapper (stores/resilient.ts)
// turns into its logged, counted fallback. Forwarding only: no counting here.
import type { BlockEntry, CounterSpec, CounterState, HitOptions, HitResult, LimitStore, RecordBounds, RecordEntry, SendingBounds, SendingCounts, SettleRequest } from '../stores/store.js';
import type { Channel } from './channel.js';
import type { PrimaryCalls, PrimaryNotes, WorkerCalls, WorkerNotes } from './protocol.js';

/** A worker's end of the IPC; the primary's end of one worker's is WorkerLink (primary.ts). */
export type WorkerChannel = Channel<WorkerCalls, WorkerNotes, PrimaryCalls, PrimaryNotes>;

export class IpcStore implements LimitStore {
  constructor(
    private readonly channel: Pick<WorkerChannel, 'call' | 'notify'>,
    private readonly timeoutMs: number,
  ) {}

  hit(specs: readonly CounterSpec[], opts?: HitOptions): Promise<HitResult> {
    return this.channel.call('store.hit', opts === undefined ? [[...specs]] : [[...specs], opts], this.timeoutMs);
  }

  /** The route is the resilient wrapper's business: what reaches this store settles here.
   *  Counts nobody reads (a success's) settle by a note: no reply, no wake-up for it, and the
   *  next call from this worker reaches the primary after it. The history row travels with the
   *  settle and the primary writes it after (store-host.ts): taken as written here, as a
   *  historyAdd note would be (one message a login instead of two). */
  settle(specs: readonly CounterSpec[], req: SettleRequest): Promise<number[]> {
    const row = req.record;
    const sent: SettleRequest = row ? { ...req, record: { key: row.key, field: row.field, bounds: row.bounds } } : req;
    if (row) row.written = true;
    if (!req.countsUnread) return this.channel.call('store.settle', [[...specs], sent], this.timeoutMs);
    this.channel.notify('store.settled', [[...specs], sent]);
    return Promise.resolve(specs.map(() => 0));
  }

  peek(key: string): Promise<CounterState> {
    return this.channel.call('store.peek', [key], this.timeoutMs);
  }

  blocks(): Promise<BlockEntry[]> {
    return this.channel.call('store.blocks', [], this.timeoutMs);
  }

  async reset(key: string): Promise<void> {
    await this.channel.call('store.reset', [key], this.timeoutMs);
  }

  async block(key: string, ms: number): Promise<void> {
    await this.channel.call('store.block', [key, ms], this.timeoutMs);
  }

  /** Login history, written after the verdict: a note, no reply. */
  async historyAdd(key: string, field: string, bounds: RecordBounds): Promise<void> {
    this.channel.notify('store.record', { key, field, bounds });
  }

  historyGet(key: string): Promise<RecordEntry[]> {
    return this.channel.call('store.history', [key], this.timeoutMs);
  }

  historyTake(key: string, field: string): Promise<boolean> {
    return this.channel.call('store.take', [key, field], this.timeoutMs);
  }

  /** Sending limits: calls (the checks read the counts, the alert reads what an add made). */
  sendingPeek(countsKey: string, knownKey: string, prints: readonly string[], at: { atMs: number; knownTtlMs: number }): Promise<SendingCounts & { known: boolean[] }> {
    return this.channel.call('store.sending-peek', [countsKey, knownKey, [...prints], at], this.timeoutMs);
  }

  sendingAdd(countsKey: string, knownKey: string, prints: readonly string[], bounds: SendingBounds): Promise<SendingCounts & { added: number }> {
    return this.channel.call('store.sending-add', [countsKey, knownKey, [...prints], bounds], this.timeoutMs);
  }

  async sendingReset(countsKey: string, knownKey?: string): Promise<void> {
    await this.channel.call('store.sending-reset', knownKey === undefined ? [countsKey] : [countsKey, knownKey], this.timeoutMs);
  }

  /** The channel belongs to the worker; nothing to close here. */
  async close(): Promise<void> {}
}
