// Unit tests for the post-AUTH SMTP tracker (issue 21): the transaction, refusals in their
// places, byte bounds and every way it loses sync (then passing every byte). Driven as the
// splice drives it, one chunk and byte by byte. Pure: no sockets.
import { describe, expect, it } from 'vitest';
import { SmtpTracker, TRACKER_MAX_HELD_BYTES, TRACKER_MAX_LINE_BYTES } from '../../src/protocols/smtp/tracker.js';
import { both, R451, Sim } from '../helpers/smtp-tracker-sim.js';

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
    // A body sent before the 354, past what the tracker holds: lost on the client side.
    const s = new Sim(false, (c) => c.verb === 'RCPT').client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n');
    s.client(Buffer.alloc(TRACKER_MAX_HELD_BYTES + 1, 'a'));
    expect(s.t.lost).toBe(true);
    s.backend('250 ok\r\n554 no valid recipients\r\n');
    expect(s.received).toBe('250 ok\r\n' + R451.toString() + '554 no valid recipients\r\n');
  });

  it('releases held bytes when it loses sync while holding', () => {
    const s = new Sim(false).client('DATA\r\nbody\r\n');
    expect(s.t.holding).toBe(true);
    s.backend('250 what\r\n');
    expect(s.t.lost).toBe(true);
    expect(s.sent).toBe('DATA\r\nbody\r\n');
  });

  it('passThrough only once nothing is left inside: held bytes, refusals to place, events', () => {
    const held = new Sim(false).client('DATA\r\nbody').backend('250 what\r\n');
    expect(held.t.lost).toBe(true);
    expect(held.sent).toBe('DATA\r\nbody'); // taken on release; the tracker must still be asked
    expect(held.t.passThrough).toBe(true);
    const queued = new Sim(false, (c) => c.verb === 'RCPT').client('MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n');
    queued.client(Buffer.alloc(TRACKER_MAX_HELD_BYTES + 1, 'a'));
    expect([queued.t.lost, queued.t.passThrough]).toEqual([true, false]);
    queued.backend('250 ok\r\n');
    expect(queued.received).toBe('250 ok\r\n' + R451.toString());
    expect(queued.events).toEqual([{ type: 'lost', reason: expect.any(String) }]);
    expect(queued.t.passThrough).toBe(true);
  });

  it('abandon(): lost at once, queued refusals handed back, held bytes released', () => {
    const s = new Sim(false, (c) => c.verb === 'RCPT').client('MAIL FROM:<a@x>\r\nRCPT TO:<c@y>\r\nDATA\r\nbody');
    expect(s.t.holding).toBe(true);
    expect(s.t.abandon('no reply in time')).toEqual([R451]);
    expect([s.t.lost, s.t.holding]).toEqual([true, false]);
    expect(s.t.fromClient(Buffer.alloc(0)).map((p) => p.bytes.toString())).toEqual(['body']);
    expect(s.t.takeEvents()).toEqual([{ type: 'lost', reason: 'no reply in time' }]);
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
