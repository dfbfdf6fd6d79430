// TLS session-ticket keys (issue 22): the one 48-byte key set every client-facing context of a
// process seals and opens tickets with, and the timer that replaces it. In worker mode the
// primary draws and rotates (it serves no TLS) and each worker applies what it is told, so a
// ticket one worker sealed opens on any other. Keys live in memory only: never logged, counted,
// written to disk or put in a config object.
import { randomBytes } from 'node:crypto';
import type tls from 'node:tls';
import type { Config } from '../config/schema.js';

/** Node's format (tls.createSecureContext's ticketKeys): 16 bytes of key name, 16 of HMAC key,
 *  16 of AES key. */
export const TICKET_KEYS_BYTES = 48;
/** tls.ticketRotation's default. RFC 5077 §5.5 asks for keys changed regularly: a stolen key
 *  set opens every session sealed with it (TLS 1.2's master secret is inside the ticket), so
 *  this bounds what one leak exposes; a rotation costs each client one full handshake. */
export const DEFAULT_TICKET_ROTATION_MS = 12 * 3_600_000;

export const drawTicketKeys = (): Buffer => randomBytes(TICKET_KEYS_BYTES);

/** tls.createSecureContext's native half, where tls.Server.setTicketKeys writes too. */
type NativeContext = { setTicketKeys(keys: Buffer): void };

/** The process's key set and the contexts that use it. Node keeps one key set per context and
 *  opens only tickets named after it (the callback that could try a second set is internal,
 *  kept for one of Node's own tests), so a ticket sealed before a rotation fails over to a full
 *  handshake, which hands the client a new one. */
export class TicketKeys {
  private keys: Buffer;
  private readonly contexts = new Set<WeakRef<tls.SecureContext>>();

  constructor(keys: Buffer = drawTicketKeys()) {
    this.keys = checked(keys);
  }

  /** A context built now (start, reload) seals with the current keys, and follows rotations
   *  for as long as something still holds it. */
  adopt(ctx: tls.SecureContext): void {
    (ctx.context as NativeContext).setTicketKeys(this.keys);
    this.contexts.add(new WeakRef(ctx));
  }

  set(keys: Buffer): void {
    this.keys = checked(keys);
    for (const ref of this.contexts) {
      const ctx = ref.deref();
      if (ctx) (ctx.context as NativeContext).setTicketKeys(this.keys);
      else this.contexts.delete(ref);
    }
  }
}

function checked(keys: Buffer): Buffer {
  if (keys.length !== TICKET_KEYS_BYTES) throw new RangeError(`ticket keys must be ${TICKET_KEYS_BYTES} bytes`);
  return Buffer.from(keys); // a copy: nobody else's buffer can change them
}

export const rotationOf = (cfg: Config['tls']): number => cfg?.ticketRotation ?? DEFAULT_TICKET_ROTATION_MS;

/** Draws a key set now and a new one every `everyMs`, handing each new one to `publish` (the
 *  first is `current`: the caller hands it out itself, before anything can be published to). */
export class TicketRotation {
  private keys: Buffer;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private everyMs: number,
    private readonly publish: (keys: Buffer) => void,
    private readonly draw: () => Buffer = drawTicketKeys,
  ) {
    this.keys = draw();
    this.schedule();
  }

  get current(): Buffer {
    return this.keys;
  }

  /** A reload: the same keys on; a new interval counts from now. */
  retime(everyMs: number): void {
    if (everyMs === this.everyMs || this.timer === null) return;
    this.everyMs = everyMs;
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => {
      this.keys = this.draw();
      this.publish(this.keys);
    }, this.everyMs);
    this.timer.unref(); // nothing to rotate keeps no process alive
  }
}

/** What a proxy process uses: the keys its contexts adopt, and the rotation's two controls. */
export interface TicketSource {
  readonly keys: TicketKeys;
  retime(cfg: Config['tls']): void;
  stop(): void;
}

/** One process (workers: 1): keys drawn at start and rotated here. */
export function ownTickets(cfg: Config['tls']): TicketSource {
  let keys: TicketKeys | undefined;
  const rotation = new TicketRotation(rotationOf(cfg), (k) => keys!.set(k));
  keys = new TicketKeys(rotation.current);
  return { keys, retime: (c) => rotation.retime(rotationOf(c)), stop: () => rotation.stop() };
}

/** The keys as the primary sends them to a worker (PrimaryNotes 'tls.ticket-keys'). */
export const ticketNote = (keys: Buffer): { keys: string } => ({ keys: keys.toString('base64') });

/** A worker: keys as the primary sends them (tls.ticket-keys notes); it rotates nothing. */
export function toldTickets(keys: TicketKeys): TicketSource {
  return { keys, retime: () => undefined, stop: () => undefined };
}
