// Derived per probed capability list: once per list, and a new probe (a new array) is asked
// afresh, so a backend that changes its literal form or mechanisms is followed.
import { describe, expect, it } from 'vitest';
import { perList } from '../../src/protocols/per-list.js';
import { literalMinus } from '../../src/protocols/imap/replies.js';

describe('perList', () => {
  it('computes once per list and afresh for a new list', () => {
    let calls = 0;
    const minus = perList((l) => (calls++, literalMinus(l)));
    const before = ['IMAP4rev1', 'LITERAL-'];
    expect(minus(before)).toBe(true);
    expect(minus(before)).toBe(true);
    expect(calls).toBe(1);
    const probedAgain = ['IMAP4rev1', 'LITERAL+'];
    expect(minus(probedAgain)).toBe(false);
    expect(calls).toBe(2);
  });

  it('keeps an undefined answer too', () => {
    let calls = 0;
    const none = perList(() => (calls++, undefined));
    const l: string[] = [];
    none(l);
    none(l);
    expect(calls).toBe(1);
  });
});
