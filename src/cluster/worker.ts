// A cluster worker: gets its config from the primary, runs the proxy (main.ts) with what the
// primary shares (memory store, connection limits, attack mode, block hints, CrowdSec's
// decisions), and answers the primary: reload in two phases, metrics, evictions, shutdown.
// Drains and exits on SIGTERM, on the primary's word, or when the primary is gone. SIGHUP is
// the primary's to handle.
import { systemClock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { exitCodeOf } from '../errors.js';
import { createLogger, flushLog, type Logger } from '../logging/logger.js';
import { startProxy, type Proxy, type ReloadReport } from '../main.js';
import { MemoryStore } from '../stores/memory.js';
import { ResilientStore } from '../stores/resilient.js';
import { Channel, processPort } from './channel.js';
import { IpcStore, type WorkerChannel } from './ipc-store.js';
import { RemoteConnections } from './remote-connections.js';
import { SharedHints } from './shared-hints.js';
import { DecisionReplica } from '../integrations/crowdsec-relay.js';
import { TicketKeys, toldTickets } from '../server/tls-tickets.js';

/** Deadline of a worker's call to the primary (a store decision, a connection admission).
 *  The primary answers in microseconds; this only bounds a stalled or dying one. */
export const IPC_CALL_MS = 250;
/** The resilient wrapper's own deadline, a backstop behind the channel's (which gives an
 *  answer already waiting one more read of the socket). */
const STORE_BACKSTOP_MS = 2 * IPC_CALL_MS;
/** Verdicts for the primary's attack-mode detector go in one note per this many ms. */
const VERDICT_FLUSH_MS = 200;

/** The primary's attack-mode detector as a worker sees it: its state (the primary tells each
 *  change) and where the backend's verdicts go (batched). */
export class AttackModeRelay {
  active = false;
  private ok = 0;
  private fail = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly channel: Pick<WorkerChannel, 'notify'>) {}

  record(outcome: 'ok' | 'fail'): void {
    if (outcome === 'ok') this.ok++;
    else this.fail++;
    this.timer ??= setTimeout(() => this.flush(), VERDICT_FLUSH_MS);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ok + this.fail > 0) this.channel.notify('verdicts', { ok: this.ok, fail: this.fail });
    this.ok = this.fail = 0;
  }
}

export function runWorker(): void {
  const slot = Number(process.env.MAILGATE_WORKER);
  const workers = Number(process.env.MAILGATE_WORKERS) || 1;
  const channel: WorkerChannel = new Channel(processPort(), 'the primary');
  let log: Logger = createLogger('info', undefined, slot);
  let cfg: Config | null = null;
  let proxy: Proxy | null = null;
  let pending: { cfg: Config; commit(): Promise<ReloadReport> } | null = null;
  let stopping = false;
  const attackMode = new AttackModeRelay(channel);
  const hints = new SharedHints(systemClock, (n) => channel.notify('hint', n, true));

  const stop = () => {
    if (stopping) return;
    stopping = true;
    attackMode.flush();
    void (proxy?.shutdown() ?? Promise.resolve()).finally(() => process.exit(0));
  };

  const crowdsec = new DecisionReplica(systemClock);
  channel.on('hint', (n) => hints.apply(n));
  channel.on('crowdsec', (d) => crowdsec.apply(d));
  const tickets = new TicketKeys(); // the primary's arrive before 'start'
  channel.on('tls.ticket-keys', ({ keys }) => tickets.set(Buffer.from(keys, 'base64')));
  channel.on('attack-mode', ({ active }) => (attackMode.active = active));
  channel.on('shutdown', stop);
  channel.handle('start', async ({ cfg: first }) => {
    cfg = first;
    log = createLogger(first.log.level, undefined, slot);
    // The memory store is the primary's; while it does not answer, this worker's own counters
    // keep the same rules (logged and counted as a store fallback).
    const store = first.store.type === 'memory' ? new ResilientStore(new IpcStore(channel, IPC_CALL_MS), new MemoryStore(systemClock), 'local', STORE_BACKSTOP_MS, log) : undefined;
    const connections = new RemoteConnections(channel, () => cfg!.limits.connections, workers, IPC_CALL_MS, log);
    try {
      proxy = await startProxy(first, { log, worker: { store, connections, attackMode, hints, crowdsec: first.crowdsec?.bouncerKey ? crowdsec : undefined, alert: (e) => channel.notify('alert', e), tickets: toldTickets(tickets) } });
    } catch (err) {
      return { ok: false, error: (err as Error).message, exitCode: exitCodeOf(err) };
    }
    if (stopping) void proxy.shutdown();
    await flushLog(log);
    return { ok: true, report: { addresses: { ...proxy.addresses }, failed: [] } };
  });
  channel.handle('prepare', async ({ cfg: next }) => {
    if (!proxy) throw new Error('not started');
    pending = { cfg: next, ...(await proxy.prepareReload(next)) };
    return null;
  });
  channel.handle('commit', async () => {
    const p = pending;
    pending = null;
    if (!p) throw new Error('nothing prepared');
    cfg = p.cfg;
    return p.commit();
  });
  channel.handle('abort', () => ((pending = null), null));
  channel.handle('metrics', async () => (proxy ? proxy.metrics.registry.getMetricsAsJSON() : []));
  channel.handle('sessions', ({ limit }) => {
    const here = proxy?.sessions.list(limit) ?? { total: 0, sessions: [] };
    return { total: here.total, sessions: here.sessions.map((s) => ({ ...s, worker: slot })) };
  });
  channel.handle('kick', (target) => proxy?.sessions.kick(target) ?? 0);

  // systemd (KillMode=control-group) and a terminal's ^C reach every process of the group.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => undefined);
  // The primary is gone (killed): nothing shares limits any more; drain and go.
  process.on('disconnect', () => {
    channel.close('the primary is gone');
    stop();
  });
  channel.notify('hello', { pid: process.pid });
}
