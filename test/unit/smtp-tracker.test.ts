// Unit tests for the post-AUTH SMTP tracker (issue 21): commands, DATA bodies and BDAT chunks,
// driven as the splice drives it, every client stream as one chunk and byte by byte, replies
// likewise. Pure: no sockets. Refusals and loss of sync: smtp-tracker-loss.test.ts.
import { describe, expect, it } from 'vitest';
import { SmtpTracker } from '../../src/protocols/smtp/tracker.js';
import { both, Sim } from '../helpers/smtp-tracker-sim.js';

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
  it('passes chunks of exactly their size, whatever they hold; holds only after BDAT LAST', () =>
    both((sim) => {
      const chunk1 = 'a\r\n.\r\nMAIL FROM:<x@y>\r\n';
      const chunk2 = '\r\n.\r\nDATA\r\n';
      const upToLast = `MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT ${chunk1.length}\r\n${chunk1}BDAT ${chunk2.length} last\r\n${chunk2}`;
      const s = sim().client(upToLast + 'BDAT 0 LAST\r\nQUIT\r\n');
      expect(s.sent).toBe(upToLast);
      expect(s.t.holding).toBe(true);
      expect(s.commands.map((c) => c.verb)).toEqual(['MAIL', 'RCPT', 'BDAT', 'BDAT']);
      expect(s.commands[3]).toEqual({ verb: 'BDAT', size: chunk2.length, last: true });
      expect(s.t.transaction).toBeNull();
      s.backend('250 a\r\n250 b\r\n250 c1\r\n250 2.0.0 queued\r\n');
      expect(s.accepted).toEqual([['b@y']]);
      expect(s.sent).toBe(upToLast + 'BDAT 0 LAST\r\n');
      expect(s.t.holding).toBe(true);
      s.backend('503 5.5.0 MAIL needed first\r\n');
      expect(s.sent).toBe(upToLast + 'BDAT 0 LAST\r\nQUIT\r\n');
      expect(s.accepted).toEqual([['b@y']]);
      expect(s.t.lost).toBe(false);
    }));

  it('a BDAT LAST answered before its chunk ends is not held after (no reply is left to wait for)', () => {
    const s = new Sim(false).client('BDAT 6 LAST\r\nabc').backend('552 5.2.3 too big\r\n').client('def\r\nNOOP\r\n');
    expect(s.t.holding).toBe(false);
    expect(s.commands.at(-1)).toEqual({ verb: 'OTHER', name: 'NOOP', known: true });
  });

  it('a BDAT whose size Dovecot would not read is one command with one reply and no chunk, as there: counting goes on', () => {
    for (const line of ['BDAT x\r\n', 'BDAT\r\n', 'BDAT  5\r\n', 'BDAT 5\tLAST\r\n', 'BDAT 5 \xff\r\n', 'BDAT 99999999999999999999\r\n']) {
      const s = new Sim(false).client('NOOP\r\n' + line + 'MAIL FROM:<a@x>\r\n');
      expect(s.t.lost, line).toBe(false);
      expect(s.pieces.map((p) => [p.bytes.toString('latin1'), p.command?.verb])).toEqual([
        ['NOOP\r\n', 'OTHER'],
        [line, 'OTHER'],
        ['MAIL FROM:<a@x>\r\n', 'MAIL'],
      ]);
      s.backend('250 ok\r\n501 5.5.4 Invalid chunk size parameter\r\n250 ok\r\n');
      expect(s.t.lost, line).toBe(false);
      expect(s.t.transaction).not.toBeNull();
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

