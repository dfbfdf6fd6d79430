// In the primary: serves its memory store to one worker's channel (the other end of
// ipc-store.ts). The store is the only one; every worker's hit and settle run here, one at a
// time on this event loop, so they are as atomic as in one process.
import type { Logger } from '../logging/logger.js';
import type { CounterSpec, LimitStore, SettleRequest } from '../stores/store.js';
import type { Channel } from './channel.js';
import type { PrimaryCalls, PrimaryNotes, StoreCalls, WorkerCalls, WorkerNotes } from './protocol.js';

/** The primary's end of one worker's IPC. */
export type WorkerLink = Channel<PrimaryCalls, PrimaryNotes, WorkerCalls, WorkerNotes>;

export function serveStore(link: Pick<WorkerLink, 'handle' | 'on'>, store: LimitStore, log: Logger): void {
  const h = <K extends keyof StoreCalls & string>(op: K, fn: (args: StoreCalls[K]['args']) => Promise<StoreCalls[K]['result']>) => link.handle(op, fn);
  const historyFailed = (err: Error) => log.error({ event: 'auth.record-failed', err: err.message }, "could not record a worker's login history");
  /** A settle with its history row (the worker took the row as written): the settle, then the
   *  row started right after it, whatever the settle's outcome, in the order the settle and the
   *  historyAdd notes it replaces were handled (a call in the same batch finds both done). */
  const settle = ({ record: row, ...req }: SettleRequest, specs: CounterSpec[]) => {
    const settled = store.settle(specs, req);
    if (row) void store.historyAdd?.(row.key, row.field, row.bounds).catch(historyFailed);
    return settled;
  };
  h('store.hit', ([specs, opts]) => store.hit(specs, opts));
  h('store.settle', ([specs, req]) => settle(req, specs));
  link.on('store.settled', ([specs, req]) => void settle(req, specs).catch((err: Error) => log.error({ event: 'auth.record-failed', err: err.message }, "could not record a worker's outcome")));
  h('store.peek', ([key]) => store.peek(key));
  h('store.blocks', () => store.blocks());
  h('store.reset', async ([key]) => (await store.reset(key), null));
  h('store.block', async ([key, ms]) => (await store.block(key, ms), null));
  h('store.history', async ([key]) => (await store.historyGet?.(key)) ?? []);
  h('store.take', async ([key, field]) => (await store.historyTake?.(key, field)) ?? false);
  // Every store of ours keeps sending counts; one without them answers each call with an error
  // (the worker's limits let the command through, logged).
  const sending = store as Required<Pick<LimitStore, 'sendingPeek' | 'sendingAdd' | 'sendingReset'>>;
  h('store.sending-peek', ([c, k, prints, at]) => sending.sendingPeek(c, k, prints, at));
  h('store.sending-add', ([c, k, prints, b]) => sending.sendingAdd(c, k, prints, b));
  h('store.sending-reset', async ([c, k]) => (await sending.sendingReset(c, k), null));
  link.on('store.record', ({ key, field, bounds }) => void store.historyAdd?.(key, field, bounds).catch(historyFailed));
}
