// The IMAP replay's reading of a backend's capability lines (backend/login-imap.ts): parsed
// once per distinct line and shared between logins, so a kept answer must be the one a fresh
// parse gives, and nobody may change it. Pure.
import { describe, expect, it } from 'vitest';
import { capabilityState } from '../../src/backend/login-imap.js';

const GREETING = '* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.';
const fresh = (line: string) => Buffer.from(line, 'latin1').toString('latin1');
const view = (line: string) => {
  const s = capabilityState(line);
  return s && { tokens: [...s.tokens], caps: [...s.caps] };
};

describe('IMAP capability lines', () => {
  it('a greeting read again gives the same answer as the first time, whatever was read between', () => {
    const first = view(GREETING);
    expect(first).toEqual({
      tokens: ['IMAP4rev1', 'SASL-IR', 'LOGIN-REFERRALS', 'ID', 'ENABLE', 'IDLE', 'LITERAL+', 'AUTH=PLAIN'],
      caps: ['IMAP4REV1', 'SASL-IR', 'LOGIN-REFERRALS', 'ID', 'ENABLE', 'IDLE', 'LITERAL+', 'AUTH=PLAIN'],
    });
    for (let i = 0; i < 20; i++) expect(view(`* CAPABILITY IMAP4rev1 X-${i} starttls`)).toEqual({ tokens: ['IMAP4rev1', `X-${i}`, 'starttls'], caps: ['IMAP4REV1', `X-${i}`, 'STARTTLS'] });
    expect(view(fresh(GREETING))).toEqual(first);
  });

  it('a line that differs in one byte is read afresh; a line without capabilities states none', () => {
    expect(view(GREETING.replace('LITERAL+', 'LITERAL-'))?.caps).toContain('LITERAL-');
    expect(view(GREETING)?.caps).toContain('LITERAL+');
    expect(capabilityState('* OK Dovecot ready.')).toBeNull();
    expect(capabilityState('* OK Dovecot ready.')).toBeNull();
    expect(view('* CAPABILITY ')).toEqual({ tokens: [], caps: [] });
    const long = `* CAPABILITY IMAP4rev1 ${'X'.repeat(5000)}`;
    expect(view(long)?.tokens).toEqual(['IMAP4rev1', 'X'.repeat(5000)]);
  });

  it('the shared answer cannot be changed by one login', () => {
    const s = capabilityState(GREETING)!;
    expect(Object.isFrozen(s)).toBe(true);
    expect(() => (s.tokens as string[]).push('LOGINDISABLED')).toThrow(TypeError);
    expect(capabilityState(GREETING)!.tokens).not.toContain('LOGINDISABLED');
  });
});
