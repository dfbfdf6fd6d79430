// Joins client and backend byte for byte after the login: the hand-over of what either side
// sent around the login reply, backpressure both ways, half-close passed on, one idle
// deadline for the pair, and which side ended it. Never parses what it forwards.
import type { Socket } from 'node:net';
import { sharedReadsOf, writeRead } from './shared-reads.js';

export interface SpliceStats {
  /** Bytes from the client to the backend. */
  bytesIn: number;
  /** Bytes from the backend to the client. */
  bytesOut: number;
  /** Who ended the session. */
  endedBy: 'client' | 'backend' | 'idle' | 'client-error' | 'backend-error' | 'shutdown' | 'kicked';
}

export interface Splice {
  /** End both sides now (shutdown, or an admin's kick). */
  destroy(why?: 'shutdown' | 'kicked'): void;
  readonly done: Promise<SpliceStats>;
  /** The counts so far, kept current while the splice runs. */
  readonly stats: Readonly<SpliceStats>;
}

/** Moves the bytes of a spliced pair in place of the plain pumps (a submission session's
 *  tracker, smtp-splice.ts): it owns both sockets' 'data' listeners and their pause/resume, and
 *  calls touch() on every chunk. The splice keeps the rest: ends, errors, idle, stats. */
export type Relay = (client: Socket, backend: Socket, stats: SpliceStats, touch: () => void) => void;

export function splice(client: Socket, backend: Socket, idleMs: number, relay?: Relay): Splice {
  const stats: SpliceStats = { bytesIn: 0, bytesOut: 0, endedBy: 'client' };
  let finished = false;
  let resolveDone!: (s: SpliceStats) => void;
  const done = new Promise<SpliceStats>((r) => (resolveDone = r));
  let lastActivity = Date.now();
  /** The side that sent the first FIN is the one that ended the session. */
  let firstEnd: 'client' | 'backend' | null = null;

  const finish = (endedBy: SpliceStats['endedBy']) => {
    if (finished) return;
    finished = true;
    stats.endedBy = endedBy;
    clearInterval(idleTimer);
    client.destroy();
    backend.destroy();
    resolveDone(stats);
  };

  const pump = (from: Socket, to: Socket, count: (n: number) => void, side: 'client' | 'backend') => {
    const reads = relay ? undefined : sharedReadsOf(from);
    if (reads) {
      // A plaintext backend: its reads, straight from the shared buffer (shared-reads.ts).
      reads.sink = (n, buf) => {
        count(n);
        lastActivity = Date.now();
        if (writeRead(to, buf, n)) return true;
        from.pause();
        return false;
      };
      to.on('drain', () => from.resume());
    } else if (!relay) {
      from.on('data', (chunk: Buffer) => {
        count(chunk.length);
        lastActivity = Date.now();
        // A reader that stops reading pauses the writer: memory stays bounded (nodejs/node#5469).
        if (!to.write(chunk)) from.pause();
      });
      to.on('drain', () => from.resume());
    }
    // Half-close: pass the FIN on; the session ends when both directions are done.
    from.on('end', () => {
      firstEnd ??= side;
      if (!to.destroyed) to.end();
      if (from.writableEnded || from.writableFinished) finish(firstEnd);
    });
    from.on('error', () => finish(`${side}-error`));
    from.on('close', () => finish(firstEnd ?? side));
  };

  pump(client, backend, (n) => (stats.bytesIn += n), 'client');
  pump(backend, client, (n) => (stats.bytesOut += n), 'backend');
  relay?.(client, backend, stats, () => (lastActivity = Date.now()));

  // One coarse timer per session instead of re-arming a timer on every chunk.
  const idleTimer = setInterval(() => {
    if (Date.now() - lastActivity >= idleMs) finish('idle');
  }, Math.min(idleMs, 60_000));
  idleTimer.unref();

  client.resume();
  backend.resume();
  return { destroy: (why = 'shutdown') => finish(why), done, stats };
}

/** After the backend's OK: the client gets the reply and whatever the backend sent behind it
 *  in one write, the backend gets the commands the client pipelined behind its login (once,
 *  after the OK), then both are spliced. The client's pre-auth listeners are dropped here. */
export function handOver(client: Socket, login: { socket: Socket; clientReply: Buffer; leftover: Buffer }, pipelined: Buffer, idleMs: number, relay?: (pipelined: Buffer) => Relay): Splice {
  client.removeAllListeners('data');
  client.removeAllListeners('end');
  client.write(login.leftover.length ? Buffer.concat([login.clientReply, login.leftover]) : login.clientReply);
  if (relay) return splice(client, login.socket, idleMs, relay(pipelined));
  if (pipelined.length) login.socket.write(pipelined);
  return splice(client, login.socket, idleMs);
}
