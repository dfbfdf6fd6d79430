// Reads of plaintext backend sockets land in one buffer for the whole process (net's `onread`)
// instead of the fresh 64 KiB ArrayBuffer Node makes for every read. Those were the splice's
// real cost: a FETCH of 50 MiB made 800 of them, and the external memory they added set V8
// marking the whole heap again and again on its helper threads (issue 22, BENCHMARKS.md). Each
// read is copied out before its callback returns, so the buffer is free for the next read of
// any socket: the splice copies into a buffer from a small pool that comes back when the write
// is done; anything else gets a copy of the read's own size as a 'data' event, exactly as a
// socket without onread emits them. Pause, resume, 'end', 'error' and 'close' are unchanged.
import type { OnReadOpts, Socket } from 'node:net';

/** What libuv asks for per read on a stream. */
const READ_SIZE = 65_536;
const SHARED = Buffer.allocUnsafeSlow(READ_SIZE);
/** Reads up to this size are copied into Node's own small-buffer pool instead. */
const SMALL_READ = 4_096;
/** Pool buffers kept for reuse: every transfer in flight holds one or two. */
const FREE_MAX = 64;
const free: Buffer[] = [];

/** Called with each read while set: the bytes are valid only until it returns. Returning false
 *  pauses the socket (resume() reads again). */
export type ReadSink = (n: number, buf: Buffer) => boolean;

const bySocket = new WeakMap<Socket, SharedReads>();

/** The onread side of one backend socket: give `options` to net.connect, then `attach` it. */
export class SharedReads {
  private socket: Socket | null = null;
  sink: ReadSink | null = null;
  readonly options: OnReadOpts = { buffer: SHARED, callback: (n, buf) => this.read(n, buf as Buffer) };

  attach(socket: Socket): void {
    this.socket = socket;
    bySocket.set(socket, this);
  }

  private read(n: number, buf: Buffer): boolean {
    if (this.sink) return this.sink(n, buf);
    this.socket?.emit('data', Buffer.from(buf.subarray(0, n)));
    return true;
  }
}

/** The shared reads of a socket made with them, else undefined (TLS, or any other socket). */
export function sharedReadsOf(socket: Socket): SharedReads | undefined {
  return bySocket.get(socket);
}

/** Writes the bytes of one read on to `to` from a copy the write owns until it is done. */
export function writeRead(to: Socket, buf: Buffer, n: number): boolean {
  if (n <= SMALL_READ) return to.write(Buffer.from(buf.subarray(0, n)));
  const out = free.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
  buf.copy(out, 0, 0, n);
  return to.write(out.subarray(0, n), () => {
    if (free.length < FREE_MAX) free.push(out);
  });
}
