// The SMTP tracker on hostile or broken streams (issue 21): whatever the client and the backend
// send, in any cuts and order, it never throws, never drops or changes a byte either way,
// delivers every refusal exactly once, holds no more than its bounds, and once passThrough
// may be bypassed. Pure: no sockets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DotScanner } from '../../src/protocols/smtp/tracker-body.js';
import { SmtpTracker, TRACKER_MAX_HELD_BYTES, TRACKER_MAX_LINE_BYTES, type Piece } from '../../src/protocols/smtp/tracker.js';
import { chunk, chunkingArb, fuzz, FUZZ_RUNS, FUZZ_TIMEOUT_MS, smtpSoupArb } from '../helpers/fuzz.js';

/** A refusal no generated reply contains, so it can be counted in what the client got. */
const REFUSAL = Buffer.from('451 4.7.1 [refusal-marker]\r\n');

const replyToken = fc.constantFrom(
  '250 ok\r\n', '250-more\r\n', '354 go ahead\r\n', '221 bye\r\n', '500 5.5.2 Line too long\r\n', '501 no\r\n', '502 no\r\n', '550 no\r\n',
  '334 \r\n', '220 ready\r\n', '421 bye\r\n', '250 ok\n', 'garbage\r\n', '\r\n', '25', '0 ok\r\n', '\r', '\n', '2', '999 x\r\n',
);
const repliesArb = fc.array(replyToken, { maxLength: 40 }).map((t) => Buffer.from(t.join(''), 'latin1'));
const clientArb = fc.oneof(
  smtpSoupArb,
  fc.array(fc.constantFrom('DATA\r\n', 'BDAT 3\r\n', 'BDAT 2 LAST\r\n', 'BDAT x\r\n', '\r\n.\r\n', '.\n', 'abc', 'MAIL FROM:<a@b>\r\n', 'RCPT TO:<c@d>\r\n', 'RSET\r\n'), { maxLength: 30 }).map((t) => Buffer.from(t.join(''))),
);

describe('SMTP tracker on hostile streams', () => {
  it('passes every byte both ways, delivers each refusal once, stays within its bounds', async () => {
    await fuzz(
      fc.property(clientArb, repliesArb, chunkingArb, chunkingArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 9 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }), (client, replies, cc, rc, turns, refusals) => {
        const t = new SmtpTracker();
        const fromClient: Buffer[] = [];
        const toClient: Buffer[] = [];
        let refused = 0;
        let largestChunk = 0;
        let bypassed = false;
        const handle = (pieces: Piece[]) => {
          for (const p of pieces) {
            fromClient.push(p.bytes);
            if (!p.command) continue;
            if ((p.command.verb === 'MAIL' || p.command.verb === 'RCPT') && refusals[refused % refusals.length]) {
              refused++;
              const now = t.refuse(p, REFUSAL);
              if (now) toClient.push(now);
            } else t.forward(p);
          }
        };
        const cs = chunk(client, cc);
        const rs = chunk(replies, rc);
        for (let turn = 0; cs.length || rs.length; turn++) {
          const fromTheClient = cs.length > 0 && (!rs.length || turns[turn % turns.length]);
          // Once passThrough, the splice may bypass the tracker both ways.
          bypassed ||= t.passThrough;
          if (t.passThrough) (fromTheClient ? fromClient : toClient).push((fromTheClient ? cs : rs).shift()!);
          else if (fromTheClient) {
            largestChunk = Math.max(largestChunk, cs[0]!.length);
            handle(t.fromClient(cs.shift()!));
          } else {
            const r = t.fromBackend(rs.shift()!);
            toClient.push(...r.toClient);
            if (r.release) handle(t.fromClient(Buffer.alloc(0)));
          }
          expect(t['heldBytes']).toBeLessThanOrEqual(TRACKER_MAX_HELD_BYTES + largestChunk);
          expect(t['partial']?.length ?? 0).toBeLessThan(TRACKER_MAX_LINE_BYTES);
        }
        // The session ends: whatever is still held or queued comes out (nothing once bypassed).
        const refusalsLeft = t.abandon('end of test');
        const piecesLeft = t.fromClient(Buffer.alloc(0));
        if (bypassed) expect([refusalsLeft.length, piecesLeft.length]).toEqual([0, 0]);
        toClient.push(...refusalsLeft);
        handle(piecesLeft);
        expect(Buffer.concat(fromClient).equals(client)).toBe(true);
        const got = Buffer.concat(toClient).toString('latin1');
        expect(got.split(REFUSAL.toString('latin1')).join('')).toBe(replies.toString('latin1'));
        expect(got.split(REFUSAL.toString('latin1')).length - 1).toBe(refused);
      }),
      FUZZ_RUNS,
    );
  }, FUZZ_TIMEOUT_MS);

  it('ends a body where a plain regex over the whole stream ends it, in any cuts', async () => {
    const token = fc.constantFrom('\n', '\r', '.', '..', 'a', '\r\n', 'x'.repeat(127), 'y'.repeat(200));
    const bodyArb = fc.array(token, { maxLength: 60 }).map((t) => Buffer.from(t.join(''), 'latin1'));
    await fuzz(
      fc.property(bodyArb, chunkingArb, (body, cut) => {
        const m = /(?:^|\n)\.\r?\n/.exec(body.toString('latin1'));
        const dot = new DotScanner();
        let offset = 0;
        let end = -1;
        for (const c of chunk(body, cut)) {
          const at = dot.scan(c, 0);
          if (at >= 0) {
            end = offset + at;
            break;
          }
          offset += c.length;
        }
        expect(end).toBe(m ? m.index + m[0].length : -1);
      }),
      FUZZ_RUNS,
    );
  }, FUZZ_TIMEOUT_MS);
});
