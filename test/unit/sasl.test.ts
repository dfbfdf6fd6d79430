// Unit tests for the shared SASL module: strict base64, PLAIN decoding, the PLAIN/LOGIN
// exchange and credential wiping. Pure: no sockets, no timers.
import { describe, expect, it, vi } from 'vitest';
import { SASL_MAX_FIELD_BYTES, SASL_MAX_TOKEN_BYTES } from '../../src/bounds.js';
import {
  decodeBase64Strict,
  decodePlain,
  isStrictBase64,
  SaslExchange,
  SASL_MECHANISMS,
  wipeCredentials,
  type Credentials,
} from '../../src/protocols/sasl.js';
import { b64 } from '../helpers/codec.js';

const start = (mech: string, initial: string | null = null) => SaslExchange.start(mech, initial, SASL_MECHANISMS);

describe('decodeBase64Strict', () => {
  it.each([
    ['', ''],
    ['YQ==', 'a'],
    ['YWI=', 'ab'],
    ['YWJj', 'abc'],
    ['AGFsaWNlAHNlY3JldA==', '\0alice\0secret'],
    ['+/+/', Buffer.from([0xfb, 0xff, 0xbf]).toString('latin1')],
  ])('accepts %j', (text, decoded) => {
    expect(decodeBase64Strict(text)?.toString('latin1')).toBe(decoded);
  });

  it('"=" is the empty response', () => {
    expect(decodeBase64Strict('=')).toEqual(Buffer.alloc(0));
  });

  it.each([
    'YQ', // missing padding
    'YQ=', // short padding
    'YQ===', // too much padding
    'Y===',
    'YWJj=',
    '==',
    'YQ==YQ==', // padding in the middle
    'YW Jj', // space
    'YWJj\r\n',
    'YW!j', // Node would silently skip "!"
    'YWJ-', // base64url is not base64
    'YWJ_',
    '*',
  ])('refuses %j', (text) => {
    expect(decodeBase64Strict(text)).toBeNull();
  });

  it('refuses tokens over the SASL bound and accepts one at it', () => {
    const max = 'A'.repeat(SASL_MAX_TOKEN_BYTES - (SASL_MAX_TOKEN_BYTES % 4));
    expect(decodeBase64Strict(max)).not.toBeNull();
    expect(decodeBase64Strict(`${max}AAAA`)).toBeNull();
  });
});

describe('isStrictBase64: one pass, whatever the input (Dovecot CVE-2025-59028)', () => {
  /** The regular expression it replaced, as the reference for what strict base64 accepts. */
  const REFERENCE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const N = SASL_MAX_TOKEN_BYTES;
  const A = (n: number) => 'A'.repeat(n);

  /** How many characters a call reads: its only work is one charCodeAt per character read
   *  (a counted step, not a timing), plus one first look at the last one (is it padded?). */
  function steps(text: string): { ok: boolean; reads: number } {
    const spy = vi.spyOn(String.prototype, 'charCodeAt');
    try {
      const ok = isStrictBase64(text);
      return { ok, reads: spy.mock.calls.length };
    } finally {
      spy.mockRestore();
    }
  }

  it.each([
    ['"=" alone (decodeBase64Strict takes it as the empty response)', '=', false],
    ['padding first', '=AAA', false],
    ['padding in the middle', 'AB==CD==', false],
    ['padding then data', 'AA=A', false],
    ['three pads', 'A===', false],
    ['four pads', '====', false],
    ['a pad inside the first group', 'A=AA', false],
    ['one pad', 'AAA=', true],
    ['two pads', 'AA==', true],
    ['empty', '', true],
    ['length 1', 'A', false],
    ['length 2', 'AA', false],
    ['length 3', 'AAA', false],
    ['length 5', 'AAAAA', false],
    ['length 6 with pads', 'AAAA==', false],
    ['length 7 with a pad', 'AAAAAA=', false],
    ['Latin-1 letter', 'AAA\u00e9', false],
    ['a code unit above 255', 'AAA\u0141', false],
    ['a surrogate pair', 'AA\ud83d\ude00', false],
    ['base64url', 'AA-_', false],
    ['NUL', 'AAA\0', false],
  ])('%s: %j', (_, text, ok) => {
    expect(isStrictBase64(text)).toBe(ok);
    expect(REFERENCE.test(text)).toBe(ok);
  });

  it(`${N} octets of almost-base64, each shaped to make a backtracking check work hard, are each read at most once`, () => {
    const crafted = [
      A(N), // valid
      `${A(N - 1)}!`, // one bad character at the very end
      `${A(N - 1)}=`, // valid, one pad
      `${A(N - 2)}==`, // valid, two pads
      `${A(N - 3)}===`, // three pads
      `${A(N - 4)}AA=A`, // a pad one place too early
      `${A(N / 2)}==${A(N / 2 - 2)}`, // padding in the middle
      'A='.repeat(N / 2), // a pad in every other place
      '='.repeat(N), // nothing but pads
      `${'AAA='.repeat(N / 4)}`, // a valid-looking tail on every group
      `${A(N - 1)}\u00e9`, // 8-bit at the end
      `${A(N - 1)}`, // one short of a group: refused before any read
    ];
    for (const text of crafted) {
      const { ok, reads } = steps(text);
      expect(ok).toBe(REFERENCE.test(text));
      expect(reads).toBeLessThanOrEqual(text.length + 1);
      expect(decodeBase64Strict(text) !== null).toBe(ok);
    }
    expect(steps(`${A(N - 1)}`).reads).toBe(0);
  });
});

describe('decodePlain', () => {
  const raw = (s: string) => Buffer.from(s, 'latin1');

  it('decodes authcid and password with an empty authzid', () => {
    expect(decodePlain(raw('\0alice\0secret'))).toEqual({ mechanism: 'PLAIN', user: raw('alice'), password: raw('secret') });
  });

  it('accepts an authzid equal to the authcid', () => {
    expect(decodePlain(raw('alice\0alice\0secret'))).toMatchObject({ user: raw('alice'), password: raw('secret') });
  });

  it('refuses an authzid different from the authcid', () => {
    expect(decodePlain(raw('bob\0alice\0secret'))).toBe('authzid-unsupported');
    expect(decodePlain(raw('Alice\0alice\0secret'))).toBe('authzid-unsupported');
  });

  it.each([
    ['no NUL', 'alicesecret'],
    ['one NUL', 'alice\0secret'],
    ['three NULs', '\0alice\0sec\0ret'],
    ['a trailing NUL', '\0alice\0secret\0'],
    ['empty authcid', '\0\0secret'],
    ['empty input', ''],
  ])('refuses %s', (_, s) => {
    expect(decodePlain(raw(s))).toBe('bad-plain');
  });

  it('accepts an empty password (the backend decides)', () => {
    expect(decodePlain(raw('\0alice\0'))).toMatchObject({ user: raw('alice'), password: Buffer.alloc(0) });
  });

  it('refuses fields over the bound', () => {
    const long = 'x'.repeat(SASL_MAX_FIELD_BYTES + 1);
    expect(decodePlain(raw(`\0${long}\0pw`))).toBe('too-long');
    expect(decodePlain(raw(`\0alice\0${long}`))).toBe('too-long');
    expect(decodePlain(raw(`${long}\0alice\0pw`))).toBe('too-long');
    expect(decodePlain(raw(`\0${'x'.repeat(SASL_MAX_FIELD_BYTES)}\0pw`))).not.toBeTypeOf('string');
  });

  it('returns copies, not views of the input', () => {
    const input = raw('\0alice\0secret');
    const creds = decodePlain(input) as Credentials;
    input.fill(0);
    expect(creds.user.toString()).toBe('alice');
    expect(creds.password.toString()).toBe('secret');
  });
});

describe('SaslExchange', () => {
  it('refuses mechanisms that are not offered, case-insensitively accepts offered ones', () => {
    expect(start('CRAM-MD5')).toEqual({ exchange: null, step: { kind: 'fail', reason: 'unknown-mechanism' } });
    expect(SaslExchange.start('LOGIN', null, ['PLAIN'])).toEqual({ exchange: null, step: { kind: 'fail', reason: 'unknown-mechanism' } });
    expect(start('plain').exchange?.mechanism).toBe('PLAIN');
  });

  it('PLAIN with an initial response completes at once', () => {
    const { step } = start('PLAIN', b64('\0alice\0secret'));
    expect(step).toEqual({ kind: 'done', credentials: { mechanism: 'PLAIN', user: Buffer.from('alice'), password: Buffer.from('secret') } });
  });

  it('PLAIN without an initial response sends an empty challenge, then takes the response', () => {
    const { exchange, step } = start('PLAIN');
    expect(step).toEqual({ kind: 'challenge', text: '' });
    expect(exchange!.respond(b64('\0alice\0pw'))).toMatchObject({ kind: 'done', credentials: { user: Buffer.from('alice') } });
  });

  it('PLAIN failures are reported by reason', () => {
    expect(start('PLAIN', '=').step).toEqual({ kind: 'fail', reason: 'bad-plain' });
    expect(start('PLAIN', '*').step).toEqual({ kind: 'fail', reason: 'cancelled' });
    expect(start('PLAIN', 'AGFs!aWNl').step).toEqual({ kind: 'fail', reason: 'bad-base64' });
    expect(start('PLAIN', b64('bob\0alice\0pw')).step).toEqual({ kind: 'fail', reason: 'authzid-unsupported' });
    expect(start('PLAIN', 'A'.repeat(SASL_MAX_TOKEN_BYTES + 4)).step).toEqual({ kind: 'fail', reason: 'too-long' });
  });

  it('LOGIN asks for the user name, then the password, then completes', () => {
    const { exchange, step } = start('LOGIN');
    expect(step).toEqual({ kind: 'challenge', text: b64('Username:') });
    expect(exchange!.respond(b64('alice'))).toEqual({ kind: 'challenge', text: b64('Password:') });
    expect(exchange!.respond(b64('secret'))).toEqual({
      kind: 'done',
      credentials: { mechanism: 'LOGIN', user: Buffer.from('alice'), password: Buffer.from('secret') },
    });
  });

  it('LOGIN with an initial response starts at the password prompt', () => {
    const { exchange, step } = start('LOGIN', b64('alice'));
    expect(step).toEqual({ kind: 'challenge', text: b64('Password:') });
    expect(exchange!.respond('=')).toMatchObject({ kind: 'done', credentials: { user: Buffer.from('alice'), password: Buffer.alloc(0) } });
  });

  it('LOGIN refuses an empty user name, a cancel at either prompt and oversize fields', () => {
    expect(start('LOGIN', '=').step).toEqual({ kind: 'fail', reason: 'bad-plain' });
    expect(start('LOGIN').exchange!.respond('*')).toEqual({ kind: 'fail', reason: 'cancelled' });
    const ex = start('LOGIN', b64('alice')).exchange!;
    expect(ex.respond('*')).toEqual({ kind: 'fail', reason: 'cancelled' });
    expect(start('LOGIN', b64('x'.repeat(SASL_MAX_FIELD_BYTES + 1))).step).toEqual({ kind: 'fail', reason: 'too-long' });
    expect(start('LOGIN', 'YWxp Y2U=').step).toEqual({ kind: 'fail', reason: 'bad-base64' });
  });
});

describe('wipeCredentials', () => {
  it('zeroes user and password buffers in place', () => {
    const { step } = start('PLAIN', b64('\0alice\0secret'));
    if (step.kind !== 'done') throw new Error('expected done');
    const { user, password } = step.credentials;
    wipeCredentials(step.credentials);
    expect(user).toEqual(Buffer.alloc(5));
    expect(password).toEqual(Buffer.alloc(6));
    expect(step.credentials.user).toBe(user);
  });
});

describe('SaslExchange: no state survives a failure', () => {
  it('zeroes a LOGIN user name when the exchange is cancelled after it', () => {
    const { exchange } = SaslExchange.start('LOGIN', null, SASL_MECHANISMS);
    exchange!.respond(Buffer.from('alice').toString('base64'));
    const held = (exchange as unknown as { user: Buffer }).user;
    expect(held.toString()).toBe('alice');
    expect(exchange!.respond('*')).toEqual({ kind: 'fail', reason: 'cancelled' });
    expect([...held].every((b) => b === 0)).toBe(true);
  });
});
