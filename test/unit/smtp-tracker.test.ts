// Unit tests for the post-AUTH SMTP tracker (issue 21), driven as the splice drives it: every
// client stream run as one chunk and byte by byte, replies likewise. Pure: no sockets.
import { describe, expect, it } from 'vitest';
import { SmtpTracker, TRACKER_MAX_HELD_BYTES, type Piece, type SmtpCommand, type TrackerEvent } from '../../src/protocols/smtp/tracker.js';
import { TRACKER_MAX_LINE_BYTES } from '../../src/protocols/smtp/tracker-commands.js';

const R451 = Buffer.from('451 4.7.1 Sending limit reached\r\n');
const EMPTY = Buffer.alloc(0);

/** The splice in miniature: forwards every command (or refuses those `refuse` picks),
 *  writes every piece's bytes to the "backend", feeds replies and takes released bytes. */
class Sim {
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
function both(scenario: (sim: (refuse?: (c: SmtpCommand) => boolean, opts?: { chunking?: boolean }) => Sim) => void): void {
  for (const bytewise of [false, true]) scenario((refuse, opts) => new Sim(bytewise, refuse, opts));
}

const ENVELOPE = 'MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n';

describe('SMTP tracker: commands and pipelining', () => {
  it('reports pipelined commands in order and passes every byte', () =>
    both((sim) => {
      const s = sim().client(ENVELOPE);
      expect(s.commands).toEqual([{ verb: 'MAIL', path: 'a@x' }, { verb: 'RCPT', path: 'b@y' }, { verb: 'RCPT', path: 'c@y' }, { verb: 'DATA' }]);
      expect(s.sent).toBe(ENVELOPE);
      expect(s.t.holding).toBe(true);
    }));

  it('ends command lines at LF, as Dovecot does, CR or not', () =>
    both((sim) => {
      const s = sim().client('NOOP\nRSET\r\nQUIT\n');
      expect(s.commands).toEqual([{ verb: 'OTHER', name: 'NOOP', known: true }, { verb: 'RSET' }, { verb: 'QUIT' }]);
      expect(s.pieces.map((p) => p.bytes.toString())).toEqual(['NOOP\n', 'RSET\r\n', 'QUIT\n']);
    }));

  it('extracts paths: parameters, SMTPUTF8, quoted local parts, no space, lower case', () => {
    const s = new Sim(false).client(
      Buffer.from([
        'MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8 SIZE=123',
        'mail from: <x@y>',
        'MAIL FROM:<>',
        'RCPT TO:<"a b>c"@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@d',
        'rcpt to:<üser@exämple.org>',
        'RCPT TO:bare@host NOTIFY=NEVER',
        'RCPT TO:<@relay.example:u@d>',
        'RCPT <nokeyword@d>',
        '',
      ].join('\r\n')),
    );
    expect(s.commands.map((c) => ('path' in c ? c.path : c))).toEqual(['a@b', 'x@y', '', '"a b>c"@d', 'üser@exämple.org', 'bare@host', '@relay.example:u@d', '']);
  });

  it('names other verbs, known or not, and counts unknown ones at their reply', () =>
    both((sim) => {
      const s = sim().client('EHLO me\r\nXCLIENT ADDR=1.2.3.4\r\nFOO\r\nMAIL:FROM\r\nVRFY x\r\n');
      expect(s.commands).toEqual([
        { verb: 'OTHER', name: 'EHLO', known: true },
        { verb: 'OTHER', name: 'XCLIENT', known: false },
        { verb: 'OTHER', name: 'FOO', known: false },
        { verb: 'OTHER', name: 'MAIL', known: false },
        { verb: 'OTHER', name: 'VRFY', known: true },
      ]);
      s.backend('250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n550 no\r\n500 what\r\n500 syntax\r\n252 maybe\r\n');
      expect(s.events).toEqual([
        { type: 'unknown', name: 'XCLIENT' },
        { type: 'unknown', name: 'FOO' },
        { type: 'unknown', name: 'MAIL' },
      ]);
      expect(s.t.lost).toBe(false);
    }));
});

describe('SMTP tracker: DATA', () => {
  it('holds after DATA until 354, then reads the body to the dot and holds until its reply', () =>
    both((sim) => {
      const s = sim().client(ENVELOPE + 'Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<a@x>\r\n');
      expect(s.sent).toBe(ENVELOPE);
      expect(s.t.holding).toBe(true);
      s.backend('250 ok\r\n250 ok\r\n550 no such user\r\n354 go\r\n');
      expect(s.sent).toBe(ENVELOPE + 'Subject: x\r\n\r\nhi\r\n.\r\n');
      expect(s.t.holding).toBe(true);
      expect(s.t.transaction?.recipients).toEqual(['b@y']);
      s.backend('250 2.0.0 queued\r\n');
      expect(s.sent).toBe(ENVELOPE + 'Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<a@x>\r\n');
      expect(s.accepted).toEqual([['b@y']]);
      expect(s.commands.at(-1)).toEqual({ verb: 'MAIL', path: 'a@x' });
      expect(s.received).toBe('250 ok\r\n250 ok\r\n550 no such user\r\n354 go\r\n250 2.0.0 queued\r\n');
    }));

  it('keeps command-like lines, dot-stuffing and mid-line dots in the body', () =>
    both((sim) => {
      const body = 'MAIL FROM:<evil@x>\r\n..\r\n.. \r\n..\r\nRCPT TO:<z@z>\r\na.\r\n .\r\n\r\n.\r\n';
      const s = sim().client(ENVELOPE).backend('250 a\r\n250 b\r\n250 c\r\n354 go\r\n').client(body + 'RSET\r\n');
      expect(s.commands).toHaveLength(4);
      s.backend('250 ok\r\n');
      expect(s.commands).toHaveLength(5);
      expect(s.sent).toBe(ENVELOPE + body + 'RSET\r\n');
      expect(s.accepted).toEqual([['b@y', 'c@y']]);
    }));

  it('ends an empty body at ".CRLF" as its first line', () =>
    both((sim) => {
      const s = sim().client(ENVELOPE).backend('250 a\r\n250 b\r\n250 c\r\n354 go\r\n').client('.\r\nQUIT\r\n');
      expect(s.t.holding).toBe(true);
      s.backend('250 ok\r\n');
      expect(s.commands.at(-1)).toEqual({ verb: 'QUIT' });
    }));

  // Dovecot 2.3.19 istream-dot.c: [CR]LF "." [CR] LF ends the body (confirmed against the
  // real Dovecot in smtp-tracker-dovecot.test.ts).
  for (const [name, body, ends] of [
    ['LF.LF', 'a\n.\n', true],
    ['CRLF.LF', 'a\r\n.\n', true],
    ['LF.CRLF', 'a\n.\r\n', true],
    ['.LF first line', '.\n', true],
    ['CR.CRLF (no LF)', 'a\r.\r\n', false],
    ['LF.x', 'a\n.x\r\n', false],
    ['LF..LF', 'a\n..\n', false],
    ['LF.CR x', 'a\n.\rx', false],
  ] as const) {
    it(`end of data: ${name} ${ends ? 'ends' : 'does not end'} the body`, () =>
      both((sim) => {
        const s = sim().client(ENVELOPE).backend('250 a\r\n250 b\r\n250 c\r\n354 go\r\n').client(body + 'NOOP\r\n');
        expect(s.t.holding).toBe(ends);
        expect(s.commands).toHaveLength(4);
        if (ends) expect(s.backend('250 ok\r\n').commands.at(-1)).toEqual({ verb: 'OTHER', name: 'NOOP', known: true });
      }));
  }

  it('reads commands after a refused DATA: the client sent no body', () =>
    both((sim) => {
      const s = sim().client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nNOOP\r\n');
      s.backend('250 ok\r\n550 no\r\n554 5.5.0 No valid recipients\r\n');
      expect(s.commands.at(-1)).toEqual({ verb: 'OTHER', name: 'NOOP', known: true });
      expect(s.t.transaction).toMatchObject({ recipients: [] });
      s.client('RSET\r\n').backend('250 ok\r\n250 reset\r\n');
      expect(s.t.transaction).toBeNull();
      expect(s.accepted).toEqual([]);
    }));

  it('a failed final reply ends the transaction without an accepted event', () =>
    both((sim) => {
      const s = sim().client(ENVELOPE).backend('250 a\r\n250 b\r\n250 c\r\n354 go\r\n').client('x\r\n.\r\n').backend('552 too big\r\n');
      expect(s.accepted).toEqual([]);
      expect(s.t.transaction).toBeNull();
      expect(s.t.holding).toBe(false);
    }));

  it('passes body chunks as subarrays of the chunk it was given, not copies', () => {
    const t = new SmtpTracker();
    for (const p of t.fromClient(Buffer.from(ENVELOPE))) if (p.command) t.forward(p);
    t.fromBackend(Buffer.from('250 a\r\n250 b\r\n250 c\r\n354 go\r\n'));
    const big = Buffer.alloc(1 << 20, 'a\r\n');
    const pieces = t.fromClient(big);
    expect(pieces).toHaveLength(1);
    expect(pieces[0]!.bytes.buffer).toBe(big.buffer);
    expect(pieces[0]!.bytes.length).toBe(big.length);
  });
});

describe('SMTP tracker: BDAT', () => {
  it('passes chunks of exactly their size, whatever they hold, without holding', () =>
    both((sim) => {
      const chunk1 = 'a\r\n.\r\nMAIL FROM:<x@y>\r\n';
      const chunk2 = '\r\n.\r\nDATA\r\n';
      const stream = `MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT ${chunk1.length}\r\n${chunk1}BDAT ${chunk2.length} last\r\n${chunk2}BDAT 0 LAST\r\nQUIT\r\n`;
      const s = sim().client(stream);
      expect(s.t.holding).toBe(false);
      expect(s.sent).toBe(stream);
      expect(s.commands.map((c) => c.verb)).toEqual(['MAIL', 'RCPT', 'BDAT', 'BDAT', 'BDAT', 'QUIT']);
      expect(s.commands[3]).toEqual({ verb: 'BDAT', size: chunk2.length, last: true });
      expect(s.t.transaction).toBeNull();
      s.backend('250 a\r\n250 b\r\n250 c1\r\n250 2.0.0 queued\r\n503 no mail\r\n221 bye\r\n');
      expect(s.accepted).toEqual([['b@y']]);
      expect(s.t.lost).toBe(false);
    }));

  it('a BDAT whose size Dovecot would not read loses sync and passes the rest as one piece', () => {
    for (const line of ['BDAT x\r\n', 'BDAT\r\n', 'BDAT  5\r\n', 'BDAT 5\tLAST\r\n', 'BDAT 5 \xff\r\n', 'BDAT 99999999999999999999\r\n']) {
      const s = new Sim(false).client('NOOP\r\n' + line + 'hello');
      expect(s.t.lost, line).toBe(true);
      expect(s.pieces.map((p) => [p.bytes.toString('latin1'), !!p.command])).toEqual([
        ['NOOP\r\n', true],
        [line + 'hello', false],
      ]);
      expect(s.t.takeEvents()).toEqual([{ type: 'lost', reason: expect.stringMatching(/BDAT/) }]);
    }
  });

  it('reads a chunk Dovecot skips despite its 501 (bad end marker, extra parameter)', () =>
    both((sim) => {
      const s = sim().client('BDAT 3 NOTLAST\r\nabcBDAT 2 LAST x\r\nxyNOOP\r\n');
      expect(s.commands.map((c) => c.verb)).toEqual(['BDAT', 'BDAT', 'OTHER']);
    }));

  it('without CHUNKING, BDAT is a plain command and what follows is read as commands', () =>
    both((sim) => {
      const s = sim(undefined, { chunking: false }).client('BDAT 6\r\nRSET\r\n').backend('502 5.5.1 Unsupported command\r\n250 ok\r\n');
      expect(s.commands).toEqual([{ verb: 'OTHER', name: 'BDAT', known: true }, { verb: 'RSET' }]);
      expect(s.t.lost).toBe(false);
    }));

  it('a 502 to BDAT when CHUNKING was assumed loses sync', () =>
    both((sim) => expect(sim().client('BDAT 6\r\nRSET\r\n').backend('502 5.5.1 Unsupported command\r\n').t.lost).toBe(true)));
});

describe('SMTP tracker: transaction and refusals', () => {
  it('the transaction: MAIL opens it, RCPTs join until refused, RSET and a failed MAIL end it', () =>
    both((sim) => {
      const s = sim().client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n');
      expect(s.t.transaction?.recipients).toEqual(['b@y', 'c@y']);
      s.backend('250 ok\r\n550 no\r\n');
      expect(s.t.transaction?.recipients).toEqual(['c@y']);
      s.client('RSET\r\n');
      expect(s.t.transaction).toBeNull();
      s.backend('250 ok\r\n250 ok\r\n').client('MAIL FROM:<a@x>\r\n');
      expect(s.t.transaction).toMatchObject({ recipients: [] });
      s.backend('550 sender refused\r\n');
      expect(s.t.transaction).toBeNull();
    }));

  it('places a refusal after the replies to the commands before it', () =>
    both((sim) => {
      const s = sim((c) => c.verb === 'RCPT' && c.path === 'c@y').client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nRCPT TO:<d@y>\r\n');
      expect(s.sent).toBe('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<d@y>\r\n');
      expect(s.received).toBe('');
      s.backend('250 mail\r\n250-b\r\n250 b ok\r\n250 d\r\n');
      expect(s.received).toBe('250 mail\r\n250-b\r\n250 b ok\r\n' + R451.toString() + '250 d\r\n');
      expect(s.t.transaction?.recipients).toEqual(['b@y', 'd@y']);
    }));

  it('returns a refusal at once when no reply is awaited', () => {
    const s = new Sim(false, (c) => c.verb === 'MAIL').client('MAIL FROM:<a@x>\r\n');
    expect(s.received).toBe(R451.toString());
    expect(s.sent).toBe('');
    expect(s.t.transaction).toBeNull();
  });

  it('refuses only MAIL and RCPT, and only pieces in order', () => {
    const t = new SmtpTracker();
    const [a, b] = t.fromClient(Buffer.from('NOOP\r\nRSET\r\n'));
    expect(() => t.refuse(a!, R451)).toThrow(/only MAIL and RCPT/);
    expect(() => t.forward(b!)).toThrow(/in order/);
  });

  it('EHLO resets the transaction; a nested MAIL leaves it', () =>
    both((sim) => {
      const s = sim().client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nMAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\n').backend('250 a\r\n250 b\r\n503 nested\r\n250 d\r\n');
      expect(s.t.transaction?.recipients).toEqual(['b@y', 'd@y']);
      s.client('EHLO me\r\n');
      expect(s.t.transaction).toBeNull();
    }));
});

describe('SMTP tracker: bounds and loss of sync', () => {
  it('passes an overlong line on, expects one failure reply and stays in step', () =>
    both((sim) => {
      const long = 'RCPT TO:<' + 'x'.repeat(TRACKER_MAX_LINE_BYTES) + '>\r\n';
      const s = sim().client('NOOP\r\n' + long + 'RSET\r\n');
      expect(s.sent).toBe('NOOP\r\n' + long + 'RSET\r\n');
      expect(s.commands.map((c) => c.verb)).toEqual(['OTHER', 'RSET']);
      s.backend('250 ok\r\n500 5.5.2 Line too long\r\n250 ok\r\n');
      expect(s.events).toEqual([{ type: 'unknown', name: '(line too long)' }]);
      expect(s.t.lost).toBe(false);
    }));

  it('holds at most one line bound of a partial command line', () => {
    const t = new SmtpTracker();
    const pieces = t.fromClient(Buffer.alloc(TRACKER_MAX_LINE_BYTES, 'a'));
    expect(pieces.map((p) => p.bytes.length)).toEqual([TRACKER_MAX_LINE_BYTES]);
    expect(pieces[0]!.command).toBeUndefined();
    expect(t.fromClient(Buffer.from('aaa\r\nNOOP\r\n')).map((p) => !!p.command)).toEqual([false, true]);
  });

  it('a line of exactly the bound is still a command', () => {
    const line = 'RCPT TO:<' + 'x'.repeat(TRACKER_MAX_LINE_BYTES - 12) + '>\r\n';
    expect(line.length).toBe(TRACKER_MAX_LINE_BYTES);
    expect(new Sim(true).client(line).commands.map((c) => c.verb)).toEqual(['RCPT']);
  });

  it('a backend that accepts an overlong line loses sync', () =>
    expect(new Sim(false).client('X'.repeat(TRACKER_MAX_LINE_BYTES + 1) + '\r\n').backend('250 fine\r\n').t.lost).toBe(true));

  for (const [name, client, reply] of [
    ['STARTTLS accepted', 'STARTTLS\r\n', '220 go ahead\r\n'],
    ['AUTH continuation', 'AUTH PLAIN\r\n', '334 \r\n'],
    ['reply to no command', '', '250 surprise\r\n'],
    ['bare LF reply', 'NOOP\r\n', '250 ok\n'],
    ['reply not ddd', 'NOOP\r\n', 'hello\r\n'],
    ['2xx to DATA', 'DATA\r\n', '250 ok\r\n'],
  ] as const) {
    it(`loses sync once on ${name}, then passes every byte`, () =>
      both((sim) => {
        const s = sim().client(client).backend(reply).backend('250 more\r\n').client('MAIL FROM:<a@b>\r\n');
        expect(s.events.filter((e) => e.type === 'lost')).toHaveLength(1);
        expect(s.received).toBe(reply + '250 more\r\n');
        expect(s.sent).toBe(client + 'MAIL FROM:<a@b>\r\n');
        expect(s.commands.at(-1)?.verb).not.toBe('MAIL');
      }));
  }

  it('a 421 when no reply is awaited is not a loss', () => both((sim) => expect(sim().backend('421 4.4.2 idle timeout\r\n').t.lost).toBe(false)));

  it('after a loss on the reply side, queued refusals still reach the client in order', () =>
    both((sim) => {
      const s = sim((c) => c.verb === 'RCPT').client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nAUTH PLAIN\r\nRCPT TO:<c@y>\r\n');
      s.backend('250 ok\r\n334 \r\n');
      expect(s.received).toBe('250 ok\r\n' + R451.toString() + '334 \r\n' + R451.toString());
      expect(s.t.lost).toBe(true);
    }));

  it('after a loss on the client side, refusals queued before it keep their place', () => {
    const s = new Sim(false, (c) => c.verb === 'RCPT').client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT x\r\n');
    expect(s.t.lost).toBe(true);
    s.backend('250 ok\r\n501 bad size\r\n');
    expect(s.received).toBe('250 ok\r\n' + R451.toString() + '501 bad size\r\n');
  });

  it('releases held bytes when it loses sync while holding', () => {
    const s = new Sim(false).client('DATA\r\nbody\r\n');
    expect(s.t.holding).toBe(true);
    s.backend('250 what\r\n');
    expect(s.t.lost).toBe(true);
    expect(s.sent).toBe('DATA\r\nbody\r\n');
  });

  it('gives up rather than hold more than its bound after DATA', () => {
    const s = new Sim(false).client('DATA\r\n');
    s.client(Buffer.alloc(TRACKER_MAX_HELD_BYTES, 'a'));
    expect(s.t.lost).toBe(false);
    s.client('a');
    expect(s.t.lost).toBe(true);
    expect(s.sent.length).toBe(6 + TRACKER_MAX_HELD_BYTES + 1);
  });
});
