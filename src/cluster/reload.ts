// A reload across workers in two phases: every worker prepares the new config (builds its TLS
// contexts and policy, changes nothing); only when all have does any commit. If one cannot,
// or does not answer in time, every worker is told to drop what it prepared: nothing changes
// anywhere. The primary validates the file before this (primary.ts).
import type { Config } from '../config/schema.js';
import type { ListenerReport } from './protocol.js';
import type { WorkerLink } from './store-host.js';

export type ReloadOutcome =
  /** Per worker, in order: its listeners after the commit, or null if its commit failed (it
   *  prepared, so only its listeners can have failed to open; it is left as it is). */
  | { ok: true; reports: (ListenerReport | null)[] }
  | { ok: false; slot: number; error: string };

export async function reloadWorkers(workers: readonly { slot: number; link: Pick<WorkerLink, 'call'> }[], cfg: Config, timeoutMs: number): Promise<ReloadOutcome> {
  const prepared = await Promise.allSettled(workers.map((w) => w.link.call('prepare', { cfg }, timeoutMs)));
  const failed = prepared.findIndex((p) => p.status === 'rejected');
  if (failed >= 0) {
    await Promise.allSettled(workers.map((w) => w.link.call('abort', null, timeoutMs)));
    return { ok: false, slot: workers[failed]!.slot, error: ((prepared[failed] as PromiseRejectedResult).reason as Error).message };
  }
  const committed = await Promise.allSettled(workers.map((w) => w.link.call('commit', null, timeoutMs)));
  return { ok: true, reports: committed.map((c) => (c.status === 'fulfilled' ? c.value : null)) };
}
