// Unit tests for mailgate's own count of what a pre-auth client has not read
// (server/client-writer.ts, issue 15): reply bytes written, falling at the assumed drain rate,
// never below what Node still holds; over the bound at 16 KiB, back under at half of it. Pure:
// a hand-moved clock, no sockets.
import { describe, expect, it } from 'vitest';
import { PREAUTH_REPLY_DRAIN_BYTES_PER_SEC, PREAUTH_UNREAD_REPLY_BYTES } from '../../src/bounds.js';
import { ManualClock } from '../../src/clock.js';
import { UnreadReplies } from '../../src/server/client-writer.js';

const B = PREAUTH_UNREAD_REPLY_BYTES;
const RATE = PREAUTH_REPLY_DRAIN_BYTES_PER_SEC;

function ledger() {
  const clock = new ManualClock();
  return { clock, replies: new UnreadReplies(() => clock.now()) };
}

describe('unread replies', () => {
  it('counts what was written and lets it fall at the drain rate, never below nothing', () => {
    const { clock, replies } = ledger();
    replies.wrote(1000);
    replies.wrote(3000);
    expect(replies.unread(0)).toBe(4000);
    clock.advance(500);
    expect(replies.unread(0)).toBe(4000 - RATE / 2);
    clock.advance(60_000);
    expect(replies.unread(0)).toBe(0);
  });

  it('is never less than what Node itself still holds for the client', () => {
    const { clock, replies } = ledger();
    replies.wrote(2 * B);
    clock.advance(60_000);
    expect(replies.unread(B + 1)).toBe(B + 1);
    expect(replies.over(B + 1, false)).toBe(true);
  });

  it('is over past the bound, and once held stays so until half the bound', () => {
    const { clock, replies } = ledger();
    replies.wrote(B);
    expect(replies.over(0, false)).toBe(false);
    replies.wrote(1);
    expect(replies.over(0, false)).toBe(true);
    // Held: under the bound again is not enough.
    clock.advance(1000);
    expect(replies.over(0, false)).toBe(false);
    expect(replies.over(0, true)).toBe(true);
    clock.advance(replies.msUntilResume());
    expect(replies.over(0, true)).toBe(false);
    expect(replies.msUntilResume()).toBe(0);
  });

  it('says when the count will have fallen to half the bound', () => {
    const { replies } = ledger();
    replies.wrote(B / 2 + RATE);
    expect(replies.msUntilResume()).toBe(1000);
  });

  it('forgets everything once the client proved it read it (a TLS handshake)', () => {
    const { replies } = ledger();
    replies.wrote(3 * B);
    replies.readAll();
    expect(replies.unread(0)).toBe(0);
    expect(replies.over(0, true)).toBe(false);
  });
});
