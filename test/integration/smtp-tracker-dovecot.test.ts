// The SMTP tracker's choices checked against the real Dovecot 2.3 submission service (relaying
// to an smtp-server sink): where a body with bare LF ends, what an overlong command line or a
// BDAT without a size gets (one 501, no chunk read: the tracker reads it so too), and RCPT pipelined right after a message's end. The test plays
// the splice: Dovecot gets the pieces the tracker hands out, the tracker Dovecot's replies.
// Seen with Dovecot 2.3.19.1: "\n.\n", "\r\n.\n", "\n.\r\n" end a body; "\r.\r\n" and
// "\n.x" do not; 4096 octets of parameters pass, 4097 get "500 5.5.2 Line too long" and
// the session reads on; MAIL+RCPT in the same write as the final dot or BDAT LAST's chunk
// abort the process (pending_rcpt_cmds assertion) after relaying, before the client's 250.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { SmtpTracker, type Piece, type TrackerEvent } from '../../src/protocols/smtp/tracker.js';
import { b64 } from '../helpers/codec.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const rig = dovecotForFile({ sink: true });
const DOVECOT_VERSION = execFileSync('/usr/sbin/dovecot', ['--version'], { encoding: 'utf8' });

/** A submission session after AUTH, with a tracker watching both directions. */
class Tapped {
  readonly t = new SmtpTracker();
  readonly events: TrackerEvent[] = [];
  private seen = 0;

  private constructor(readonly c: RawClient) {}

  static async open(): Promise<Tapped> {
    const c = await RawClient.connect(rig.dovecot.ports.submission);
    await c.waitFor(/^220 .*\r\n/m);
    c.write('EHLO client.test\r\n');
    await c.waitFor(/^250 .*\r\n/m);
    c.write(`AUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
    await c.waitFor(/^235 /m);
    c.clear();
    return new Tapped(c);
  }

  /** The client sends `data`: as the splice does, Dovecot gets the pieces the tracker gives
   *  (every command forwarded), held bytes once a reply releases them. */
  send(data: string): void {
    this.take(this.t.fromClient(Buffer.from(data, 'latin1')));
  }

  private take(pieces: Piece[]): void {
    for (const p of pieces) {
      if (p.command) this.t.forward(p);
      this.c.write(p.bytes);
    }
  }

  /** Waits for Dovecot's new replies to match `pattern`, then feeds them on. */
  async expect(pattern: RegExp): Promise<string> {
    await until(() => pattern.test(this.c.received.slice(this.seen)) || this.c.closed, `Dovecot to answer ${pattern}`, 5000);
    return this.feed();
  }

  /** Feeds what arrived since the last call; returns it. */
  feed(all = this.c.received): string {
    const fresh = all.slice(this.seen);
    this.seen = all.length;
    const r = this.t.fromBackend(Buffer.from(fresh, 'latin1'));
    this.events.push(...r.events);
    if (r.release) this.take(this.t.fromClient(Buffer.alloc(0)));
    return fresh;
  }

  async envelope(): Promise<void> {
    this.send('MAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n');
    await this.expect(/^354 .*\r\n/m);
    expect(this.t.holding).toBe(false);
  }
}

describe('SMTP tracker against Dovecot 2.3 submission', () => {
  // istream-dot.c: [CR]LF "." [CR] LF ends the body. Dovecot answers the message at once
  // (relayed to the sink) and the tracker, fed the same bytes, holds for that reply.
  for (const [name, end] of [
    ['LF.LF', '\n.\n'],
    ['CRLF.LF', '\r\n.\n'],
    ['LF.CRLF', '\n.\r\n'],
  ] as const) {
    it(`a body ended by ${name} ends there for Dovecot and for the tracker`, async () => {
      const s = await Tapped.open();
      await s.envelope();
      const subject = `bare-lf-${name}`;
      s.send(`Subject: ${subject}\r\n\r\nline one${end}`);
      expect(s.t.holding).toBe(true);
      await s.expect(/^250 .*\r\n/m);
      expect(s.events).toEqual([{ type: 'accepted', recipients: ['bob@localhost'] }]);
      expect(rig.sink.messages.some((m) => m.raw.toString('latin1').includes(subject))).toBe(true);
      s.c.close();
    });
  }

  it('"CR . CRLF" and "LF .x" do not end a body, for Dovecot or the tracker', async () => {
    const s = await Tapped.open();
    await s.envelope();
    s.send('Subject: not-yet\r\n\r\na\r.\r\nb\n.x\r\nc\r\n.\r\n');
    // One reply: had Dovecot ended the body early, the rest would have been 500s.
    expect(await s.expect(/^250 .*\r\n/m)).toMatch(/^250 [^\n]*\r\n$/);
    expect(s.events).toEqual([{ type: 'accepted', recipients: ['bob@localhost'] }]);
    // Dovecot relays "a\r.\r\nb\n.x" as "a\r\n.\r\nb\r\nx": the CR is a line break to it, and
    // it drops the dot of ".x" as if it had been stuffed.
    expect(rig.sink.messages.find((m) => m.raw.includes('not-yet'))!.raw.toString('latin1')).toMatch(/\r\n\r\na\r\n\.\r\nb\r\nx\r\nc\r\n$/);
    s.c.close();
  });

  // Dovecot 2.3.19: RCPT pipelined in the same write right after a message's final dot
  // trips "assertion failed: (conn->state.pending_rcpt_cmds == 0)" in
  // smtp_server_transaction_finished: the process aborts after relaying the message but
  // before the client hears 250 (so the client retries and the message goes twice). The
  // tracker holds bytes after the dot until the reply, which keeps Dovecot from it.
  const ENVELOPE = 'MAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\n';
  const PIPELINED = 'Subject: pipelined\r\n\r\nx\r\n.\r\nMAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\n';
  it.runIf(DOVECOT_VERSION.startsWith('2.3.'))('Dovecot 2.3 aborts on RCPT pipelined right after the final dot (reproduced)', async () => {
    const s = await Tapped.open();
    await s.envelope();
    const mark = await rig.dovecot.logMark();
    s.c.write(PIPELINED);
    await s.c.waitClosed();
    expect(s.c.received).not.toMatch(/^354 .*\r\n[\s\S]*^250 /m);
    expect(await rig.dovecot.settledLog(mark)).toMatch(/Panic: .*assertion failed: \(conn->state\.pending_rcpt_cmds == 0\)/);
  });

  it('with the tracker holding after the dot, the same bytes get every reply', async () => {
    const s = await Tapped.open();
    await s.envelope();
    const mark = await rig.dovecot.logMark();
    s.send(PIPELINED);
    expect(s.t.holding).toBe(true);
    const replies = (await s.expect(/^250 .*\r\n/m)) + (await s.expect(/^250 [\s\S]*^250 .*\r\n/m));
    expect(replies.match(/^250 /gm)).toHaveLength(3);
    expect(s.events).toEqual([{ type: 'accepted', recipients: ['bob@localhost'] }]);
    expect(s.t.transaction?.recipients).toEqual(['bob@localhost']);
    expect(await rig.dovecot.settledLog(mark)).not.toMatch(/Panic/);
    s.c.close();
  });

  it.runIf(DOVECOT_VERSION.startsWith('2.3.'))('Dovecot 2.3 aborts the same way on RCPT pipelined right after BDAT LAST (reproduced)', async () => {
    const s = await Tapped.open();
    const mark = await rig.dovecot.logMark();
    s.c.write(`${ENVELOPE}BDAT 5 LAST\r\nx\r\n.\r\n${ENVELOPE}`);
    await s.c.waitClosed();
    expect(s.c.received).toBe('250 2.1.0 Accepted\r\n250 2.0.0 Accepted\r\n');
    expect(await rig.dovecot.settledLog(mark)).toMatch(/Panic: .*assertion failed: \(conn->state\.pending_rcpt_cmds == 0\)/);
  });

  it('BDAT chunks holding CRLF.CRLF and commands pass whole; held after BDAT LAST, no abort', async () => {
    const s = await Tapped.open();
    const mark = await rig.dovecot.logMark();
    const chunk = 'Subject: bdat-chunks\r\n\r\n.\r\nMAIL FROM:<evil@x>\r\n';
    s.send(`${ENVELOPE}BDAT ${chunk.length}\r\n${chunk}BDAT 8 LAST\r\nend\r\n.\r\n${ENVELOPE}`);
    expect(s.t.holding).toBe(true);
    await s.expect(/^(250 .*\r\n){4}/m);
    expect(s.events).toEqual([{ type: 'accepted', recipients: ['bob@localhost'] }]);
    expect((await s.expect(/^(250 .*\r\n){2}$/m)).match(/^250 /gm)).toHaveLength(2);
    expect(rig.sink.messages.find((m) => m.raw.includes('bdat-chunks'))!.raw.toString('latin1')).toMatch(/\r\n\r\n\.\r\nMAIL FROM:<evil@x>\r\nend\r\n\.\r\n$/);
    expect(await rig.dovecot.settledLog(mark)).not.toMatch(/Panic/);
    s.c.close();
  });

  it('BDAT without a size: Dovecot answers 501 and reads no chunk; the tracker reads it so too and stays in step', async () => {
    const s = await Tapped.open();
    s.send('BDAT x\r\nRSET\r\n');
    expect(await s.expect(/^250 .*\r\n/m)).toMatch(/^501 5\.5\.4 Invalid chunk size parameter\r\n250 /);
    expect(s.t.lost).toBe(false);
    expect(s.events).toEqual([]);
    s.c.close();
  });

  it('a command line over the bound gets one "500 Line too long" and the session reads on', async () => {
    const s = await Tapped.open();
    s.send(`NOOP ${'x'.repeat(4096)}\r\n`); // 4 KiB of parameters: the most Dovecot takes
    await s.expect(/^250 .*\r\n/m);
    s.send(`NOOP ${'x'.repeat(4097)}\r\n`); // one more: a command to the tracker, a 500 there
    expect(await s.expect(/^500 .*\r\n/m)).toBe('500 5.5.2 Line too long\r\n');
    s.send(`NOOP ${'x'.repeat(8000)}\r\nNOOP\r\n`);
    const replies = await s.expect(/^250 .*\r\n/m);
    expect(replies).toMatch(/^500 5\.5\.2 Line too long\r\n250 /);
    expect(s.events).toEqual([{ type: 'unknown', name: '(line too long)' }]);
    expect(s.t.lost).toBe(false);
    s.c.close();
  });

  it('XCLIENT, XFORWARD, AUTH and STARTTLS after AUTH get one refusal each: counted, in step', async () => {
    const s = await Tapped.open();
    s.send('XCLIENT ADDR=6.6.6.6\r\nXFORWARD ADDR=6.6.6.6\r\nAUTH PLAIN\r\nSTARTTLS\r\nNOOP\r\n');
    expect(await s.expect(/^250 .*\r\n/m)).toMatch(/^502 [^\n]*\n500 [^\n]*\n503 [^\n]*Already authenticated\r\n502 [^\n]*\n250 /);
    expect(s.events).toEqual([
      { type: 'unknown', name: 'XCLIENT' },
      { type: 'unknown', name: 'XFORWARD' },
    ]);
    expect(s.t.lost).toBe(false);
    s.c.close();
  });

  it('bare LF ends a command line for Dovecot as for the tracker', async () => {
    const s = await Tapped.open();
    s.send('NOOP\nNOOP\r\n');
    const replies = await s.expect(/^250 [\s\S]*^250 .*\r\n/m);
    expect(replies.match(/^250 /gm)).toHaveLength(2);
    expect(s.t.lost).toBe(false);
    s.c.close();
  });
});
