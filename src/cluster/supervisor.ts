// In the primary: the workers' lives. Forks one worker per slot (node:cluster, the slot in
// MAILGATE_WORKER), links it (channel.ts) and starts it; restarts a worker that exits on its
// own after an exponential, capped backoff (logged); stops them all on shutdown, killing
// what has not exited after the grace period. What a worker is asked is primary.ts'.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../logging/logger.js';
import { Channel, workerPort } from './channel.js';
import type { ListenerReport } from './protocol.js';
import type { WorkerLink } from './store-host.js';

/** The first restart after a crash waits this long, each further one twice as long, up to
 *  RESTART_MAX_MS: a worker that dies at once (a port taken, a bug at start) does not spin. */
export const RESTART_BASE_MS = 500;
export const RESTART_MAX_MS = 30_000;
/** A worker that ran this long before exiting starts the backoff afresh. */
export const RESTART_STABLE_MS = 60_000;
/** How long a forked worker may take to load and say hello. */
const HELLO_MS = 30_000;
/** Beyond the shutdown grace, how long workers get to exit before they are killed. */
const STOP_MARGIN_MS = 5_000;

/** Delay before the n-th consecutive restart (n from 0). */
export function restartDelayMs(n: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.min(n, 30));
}

export interface WorkerHandle {
  /** 1..N: the `worker` field of its log lines; a restarted worker keeps its slot. */
  readonly slot: number;
  readonly worker: Worker;
  readonly link: WorkerLink;
  readonly forkedAt: number;
  /** Started and serving. */
  ready: boolean;
  report: ListenerReport | null;
}

export interface SupervisorDeps {
  log: Logger;
  /** Install the primary's handlers on a new worker's channel (before it says hello). */
  link(h: WorkerHandle): void;
  /** Start a worker that said hello (send it the config); throws if it could not start. */
  start(h: WorkerHandle): Promise<void>;
  /** A worker exited: forget what it held. */
  exited(h: WorkerHandle): void;
  /** Restarts go through the primary's one queue, so none interleaves with a reload. */
  serial(task: () => Promise<void>): Promise<void>;
  onRestart(): void;
}

export class Supervisor {
  private readonly slots: (WorkerHandle | null)[];
  private readonly crashes: number[];
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Past the first start: an exit from now on is a crash to restart. */
  private running = false;
  private stopping = false;

  constructor(
    count: number,
    private readonly deps: SupervisorDeps,
  ) {
    this.slots = Array.from({ length: count }, () => null);
    this.crashes = Array.from({ length: count }, () => 0);
  }

  /** Workers linked (starting or serving): who hears notes (hints, attack mode). */
  get linked(): WorkerHandle[] {
    return this.slots.filter((h): h is WorkerHandle => h !== null && !h.link.closed);
  }

  /** Workers started and serving. */
  get live(): WorkerHandle[] {
    return this.slots.filter((h): h is WorkerHandle => h !== null && h.ready);
  }

  /** Forks and starts every slot; rejects (the others are left to stop()) if any fails. */
  async startAll(): Promise<void> {
    await Promise.all(this.slots.map((_, i) => this.spawn(i + 1)));
    this.running = true;
  }

  private spawn(slot: number): Promise<WorkerHandle> {
    const worker = cluster.fork({ MAILGATE_WORKER: String(slot), MAILGATE_WORKERS: String(this.slots.length) });
    const h: WorkerHandle = { slot, worker, link: new Channel(workerPort(worker), `worker ${slot}`), forkedAt: Date.now(), ready: false, report: null };
    this.slots[slot - 1] = h;
    const exited = new Promise<never>((_, reject) => {
      worker.once('exit', (code, signal) => {
        this.onExit(h, code, signal);
        reject(new Error(`worker ${slot} exited at start (${signal ?? `code ${code}`})`));
      });
    });
    exited.catch(() => undefined);
    const hello = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`worker ${slot} did not start within ${HELLO_MS} ms`)), HELLO_MS);
      h.link.on('hello', () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.deps.link(h);
    const started = (async () => {
      await hello;
      await this.deps.start(h);
      h.ready = true;
      return h;
    })();
    return Promise.race([started, exited]);
  }

  private onExit(h: WorkerHandle, code: number | null, signal: string | null): void {
    h.ready = false;
    h.link.close(`worker ${h.slot} exited`);
    if (this.slots[h.slot - 1] === h) this.slots[h.slot - 1] = null;
    this.deps.exited(h);
    if (this.stopping || !this.running) return;
    const i = h.slot - 1;
    if (Date.now() - h.forkedAt >= RESTART_STABLE_MS) this.crashes[i] = 0;
    const delay = restartDelayMs(this.crashes[i]!++);
    this.deps.log.error({ event: 'worker.exit', slot: h.slot, pid: h.worker.process.pid, code, signal, restartInMs: delay }, 'worker exited; restarting it');
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.stopping) return;
      this.deps.onRestart();
      void this.deps.serial(async () => {
        if (this.stopping) return;
        // A worker that cannot start is stopped and counts as another crash.
        await this.spawn(h.slot).catch(() => this.slots[h.slot - 1]?.worker.kill('SIGKILL'));
      });
    }, delay);
    this.timers.add(t);
  }

  /** Every worker drains (today's graceful shutdown in each) and exits; after graceMs and a
   *  margin the rest are killed. Resolves once none is left. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    const all = this.slots.filter((h): h is WorkerHandle => h !== null);
    const gone = all.map((h) => new Promise<void>((r) => (h.worker.isDead() ? r() : h.worker.once('exit', () => r()))));
    for (const h of all) {
      if (h.link.closed || !h.worker.isConnected()) h.worker.kill('SIGTERM');
      else h.link.notify('shutdown', null);
    }
    const kill = setTimeout(() => all.forEach((h) => h.worker.isDead() || h.worker.process.kill('SIGKILL')), graceMs + STOP_MARGIN_MS);
    await Promise.all(gone);
    clearTimeout(kill);
  }
}
