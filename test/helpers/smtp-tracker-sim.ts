// The splice in miniature, for the SMTP tracker's unit tests (test/unit/smtp-tracker*.test.ts):
// it forwards every command (or refuses those a predicate picks), writes every piece's bytes
// to the "backend", feeds replies and takes released bytes. Pure: no sockets.
import { SmtpTracker, type Piece, type SmtpCommand, type TrackerEvent } from '../../src/protocols/smtp/tracker.js';

export const R451 = Buffer.from('451 4.7.1 Sending limit reached\r\n');
const EMPTY = Buffer.alloc(0);

/** The splice in miniature (see the header). */
export class Sim {
  readonly t: SmtpTracker;
  readonly toBackend: Buffer[] = [];
  readonly toClient: Buffer[] = [];
  readonly events: TrackerEvent[] = [];
  readonly commands: SmtpCommand[] = [];
  readonly pieces: Piece[] = [];

  constructor(
    private readonly bytewise: boolean,
    private readonly refuse: (c: SmtpCommand) => boolean = () => false,
    opts: { chunking?: boolean } = {},
  ) {
    this.t = new SmtpTracker(opts);
  }

  private chunks(data: string | Buffer): Buffer[] {
    const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    return this.bytewise ? [...buf].map((b) => Buffer.from([b])) : [buf];
  }

  client(data: string | Buffer): this {
    for (const c of this.chunks(data)) this.handle(this.t.fromClient(c));
    return this;
  }

  backend(data: string): this {
    for (const c of this.chunks(data)) {
      const r = this.t.fromBackend(c);
      this.toClient.push(...r.toClient);
      this.events.push(...r.events);
      if (r.release) this.handle(this.t.fromClient(EMPTY));
    }
    return this;
  }

  private handle(pieces: Piece[]): void {
    for (const p of pieces) {
      this.pieces.push(p);
      if (p.command) this.commands.push(p.command);
      if (p.command && this.refuse(p.command)) {
        const now = this.t.refuse(p, R451);
        if (now) this.toClient.push(now);
      } else {
        if (p.command) this.t.forward(p);
        this.toBackend.push(p.bytes);
      }
    }
  }

  get sent(): string {
    return Buffer.concat(this.toBackend).toString('latin1');
  }

  get received(): string {
    return Buffer.concat(this.toClient).toString('latin1');
  }

  get accepted(): string[][] {
    return this.events.flatMap((e) => (e.type === 'accepted' ? [e.recipients] : []));
  }
}

/** Runs `scenario` once with whole chunks and once byte by byte; both must agree. */
export function both(scenario: (sim: (refuse?: (c: SmtpCommand) => boolean, opts?: { chunking?: boolean }) => Sim) => void): void {
  for (const bytewise of [false, true]) scenario((refuse, opts) => new Sim(bytewise, refuse, opts));
}

