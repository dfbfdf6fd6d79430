// Replies to a pre-auth client that may not read them: queue while the client keeps up, stop
// reading its commands while it lags, drop it once it parks too much of our memory.

/** Replies queued to a client that does not read before we stop reading its commands. */
const MAX_PENDING_WRITE_BYTES = 64 * 1024;
/** Replies queued to a client that does not read before it is dropped: one read of cheap
 *  pipelined commands (CAPA, EHLO, CAPABILITY) asks for up to ~16 times its size in replies,
 *  so pausing alone would let each such client park about a megabyte here. */
const MAX_UNREAD_REPLY_BYTES = 2 * MAX_PENDING_WRITE_BYTES;

interface Writable {
  readonly writableLength: number;
  write(data: string | Buffer): boolean;
  isPaused(): boolean;
  pause(): unknown;
  resume(): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

/** Queues one reply; false when the client has left too much unread and must be dropped.
 *  `resumable()` says whether reading may resume once the queue drains (still pre-auth). */
export function sendReply(socket: Writable, data: string | Buffer, resumable: () => boolean): boolean {
  if (socket.writableLength > MAX_UNREAD_REPLY_BYTES) return false;
  socket.write(data);
  // Once per stall: a drain listener per reply would pile up thousands.
  if (socket.writableLength > MAX_PENDING_WRITE_BYTES && !socket.isPaused()) {
    socket.pause();
    socket.once('drain', () => resumable() && socket.resume());
  }
  return true;
}
