// One side of the IPC between the primary and a worker: typed calls with a deadline each,
// one-way notes, and the handlers for what the other side asks. What one event-loop turn
// sends goes in one write (an array): a message costs mostly the peer's wake-up, so messages
// of one turn share it. A call never hangs: it is
// answered, or rejected with MG_IPC_TIMEOUT after its deadline, or with MG_IPC_CLOSED as soon
// as the channel closes (the peer exited), or at once with MG_IPC_BUSY while too many are
// waiting (a stalled peer cannot make the queue grow without bound). Knows nothing of stores
// or sockets.
import type { Worker } from 'node:cluster';
import { MailgateError } from '../errors.js';
import { isEnvelope, type CallTable, type Envelope, type NoteTable } from './protocol.js';

/** The transport: node:cluster's process.send / worker.send, or a pair in memory (tests). */
export interface Port {
  send(message: Envelope | Envelope[], done: (err: Error | null) => void): void;
  onMessage(fn: (message: unknown) => void): void;
}

/** In a worker: the channel to the primary. */
export function processPort(): Port {
  return {
    send(message, done) {
      if (!process.send || !process.connected) return done(new Error('IPC channel closed'));
      process.send(message, undefined, undefined, (err) => done(err ?? null));
    },
    onMessage: (fn) => void process.on('message', fn),
  };
}

/** In the primary: the channel to one worker. */
export function workerPort(worker: Worker): Port {
  return {
    send(message, done) {
      if (!worker.isConnected()) return done(new Error('IPC channel closed'));
      worker.send(message, undefined, undefined, (err) => done(err ?? null));
    },
    onMessage: (fn) => void worker.on('message', fn),
  };
}

interface Pending {
  op: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

type Handler = (args: never) => unknown;

/** Calls waiting for answers at most: past it a stalled peer is not asked more (the caller
 *  falls back at once). Far above what a working primary has out: each waits microseconds. */
export const MAX_IN_FLIGHT = 10_000;

/** `Out*`: what this side asks and tells; `In*`: what it answers and hears. */
export class Channel<OutCalls extends CallTable, OutNotes extends NoteTable, InCalls extends CallTable, InNotes extends NoteTable> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Handler>();
  private readonly listeners = new Map<string, (args: never) => void>();
  private closedWhy: string | null = null;
  /** This turn's messages, written together after its I/O callbacks (setImmediate). */
  private outbox: { message: Envelope; failed?: (err: Error) => void }[] = [];

  constructor(
    private readonly port: Port,
    /** Who is at the other end, for error messages ("the primary", "worker 2"). */
    private readonly peer: string,
    private readonly maxInFlight = MAX_IN_FLIGHT,
  ) {
    port.onMessage((m) => this.receive(m));
  }

  get closed(): boolean {
    return this.closedWhy !== null;
  }

  /** Pending calls (tests, and a bound check: each is cleared by its answer or deadline). */
  get inFlight(): number {
    return this.pending.size;
  }

  call<K extends keyof OutCalls & string>(op: K, args: OutCalls[K]['args'], timeoutMs: number): Promise<OutCalls[K]['result']> {
    if (this.closedWhy !== null) return Promise.reject(new MailgateError('MG_IPC_CLOSED', `${op}: ${this.closedWhy}`));
    if (this.pending.size >= this.maxInFlight) return Promise.reject(new MailgateError('MG_IPC_BUSY', `${op}: ${this.pending.size} calls already wait for ${this.peer}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // Timers run before the loop reads its sockets: a loop that was busy past the deadline
      // gets one read (setImmediate runs after it) before an answer already there is late.
      const late = () => this.settle(id, new MailgateError('MG_IPC_TIMEOUT', `${this.peer} did not answer ${op} within ${timeoutMs} ms`));
      const timer = setTimeout(() => setImmediate(late), timeoutMs);
      this.pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject, timer });
      this.post({ mg: 'call', id, op, args }, (err) => this.settle(id, new MailgateError('MG_IPC_CLOSED', `${op}: cannot reach ${this.peer} (${err.message})`)));
    });
  }

  /** Fire and forget; dropped once the channel is closed. `now`: written at once with what
   *  this turn queued before it (an admin block or attack mode, which the admin's answer must
   *  not overtake), not at the end of the turn. */
  notify<K extends keyof OutNotes & string>(op: K, args: OutNotes[K], now = false): void {
    if (this.closedWhy !== null) return;
    this.post({ mg: 'note', op, args });
    if (now) this.flush();
  }

  private post(message: Envelope, failed?: (err: Error) => void): void {
    if (this.outbox.push({ message, failed }) === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const out = this.outbox;
    if (out.length === 0) return; // flushed at once already
    this.outbox = [];
    if (this.closedWhy !== null) {
      const err = new Error(this.closedWhy);
      return out.forEach((o) => o.failed?.(err));
    }
    this.port.send(out.length === 1 ? out[0]!.message : out.map((o) => o.message), (err) => err && out.forEach((o) => o.failed?.(err)));
  }

  /** Answer calls `op` with fn's value; a throw or rejection goes back as the error message. */
  handle<K extends keyof InCalls & string>(op: K, fn: (args: InCalls[K]['args']) => InCalls[K]['result'] | Promise<InCalls[K]['result']>): void {
    this.handlers.set(op, fn as Handler);
  }

  on<K extends keyof InNotes & string>(op: K, fn: (args: InNotes[K]) => void): void {
    this.listeners.set(op, fn as (args: never) => void);
  }

  /** The peer is gone: every pending call fails now, later ones at once. */
  close(why: string): void {
    if (this.closedWhy !== null) return;
    this.closedWhy = why;
    for (const id of [...this.pending.keys()]) this.settle(id, new MailgateError('MG_IPC_CLOSED', why));
  }

  private settle(id: number, err: Error | null, value?: unknown): void {
    const p = this.pending.get(id);
    if (!p) return; // answered already, or late after its deadline
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  private receive(m: unknown): void {
    if (Array.isArray(m)) return m.forEach((x) => this.receive(x));
    if (!isEnvelope(m)) return;
    if (m.mg === 'reply') return this.settle(m.id, m.ok ? null : new Error(`${this.peer}: ${m.error}`), m.ok ? m.value : undefined);
    if (m.mg === 'note') return this.listeners.get(m.op)?.(m.args as never);
    void this.answer(m.id, m.op, m.args);
  }

  private async answer(id: number, op: string, args: unknown): Promise<void> {
    const fn = this.handlers.get(op);
    let reply: Envelope;
    try {
      if (!fn) throw new Error(`no handler for ${op}`);
      reply = { mg: 'reply', id, ok: true, value: (await fn(args as never)) ?? null };
    } catch (err) {
      reply = { mg: 'reply', id, ok: false, error: (err as Error).message };
    }
    if (this.closedWhy === null) this.post(reply);
  }
}
