// Unit tests for user-name validation and canonicalisation (limits, logs, keys) and the
// log-safe rendering of client bytes. Pure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkUser, checkUserGeneral, printable, printableGeneral } from '../../src/protocols/identity.js';

const u = (s: string) => Buffer.from(s, 'utf8');
const canonical = (raw: Buffer) => {
  const r = checkUser(raw);
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r.canonical;
};

describe('checkUser canonicalisation', () => {
  it('Alice, ALICE, alice and " alice " share one value', () => {
    const forms = ['Alice', 'ALICE', 'alice', ' alice ', 'aLiCe\u00a0'].map((s) => canonical(u(s)));
    expect(new Set(forms)).toEqual(new Set(['alice']));
  });

  it('NFC and NFD forms of the same name are equal', () => {
    const nfc = u('jos\u00e9@example.org');
    const nfd = u('jose\u0301@example.org');
    expect(nfc.equals(nfd)).toBe(false);
    expect(canonical(nfd)).toBe(canonical(nfc));
    expect(canonical(u('JOSE\u0301@Example.org'))).toBe('jos\u00e9@example.org');
  });

  it('keeps inner spaces and distinct names distinct', () => {
    expect(canonical(u('a lice'))).toBe('a lice');
    expect(canonical(u('alice1'))).not.toBe(canonical(u('alice')));
  });

  it('display keeps the name as sent', () => {
    expect(checkUser(u(' Alice '))).toEqual({ ok: true, canonical: 'alice', display: ' Alice ' });
  });
});

describe('checkUser refusals', () => {
  it.each([
    ['a lone continuation byte', [0x61, 0x80]],
    ['a truncated sequence', [0x61, 0xc3]],
    ['an overlong encoding', [0xc0, 0xaf]],
    ['a surrogate', [0xed, 0xa0, 0x80]],
    ['latin1 bytes', [0x6a, 0x6f, 0x73, 0xe9]],
  ])('refuses invalid UTF-8: %s', (_, bytes) => {
    const r = checkUser(Buffer.from(bytes));
    expect(r).toMatchObject({ ok: false, reason: 'invalid UTF-8' });
    expect(r.display).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it.each([
    ['NUL', 'alice\0admin'],
    ['CR', 'alice\radmin'],
    ['LF', 'alice\nadmin'],
    ['CRLF', 'alice\r\nA2 LOGIN bob x'],
    ['TAB', '\talice'],
    ['ESC', 'alice\x1b[2J'],
    ['DEL', 'alice\x7f'],
    ['a C1 control (NEL)', 'alice\u0085'],
  ])('refuses %s and never truncates', (_, s) => {
    const r = checkUser(u(s));
    expect(r).toMatchObject({ ok: false, reason: 'control character' });
    expect(r).not.toHaveProperty('canonical');
    expect(r.display).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(r.display.length).toBeGreaterThan('alice'.length);
  });

  it('refuses empty and whitespace-only names', () => {
    expect(checkUser(Buffer.alloc(0))).toMatchObject({ ok: false, reason: 'empty' });
    expect(checkUser(u('   '))).toMatchObject({ ok: false, reason: 'empty' });
  });
});

describe('printable', () => {
  it('keeps printable ASCII and valid UTF-8 as is', () => {
    expect(printable(u('alice@example.org'))).toBe('alice@example.org');
    expect(printable(u('jos\u00e9 \u65e5\u672c'))).toBe('jos\u00e9 \u65e5\u672c');
  });

  it('escapes control characters as \\xNN', () => {
    expect(printable(u('a\r\nb\0c\x1b\x7f'))).toBe('a\\x0d\\x0ab\\x00c\\x1b\\x7f');
  });

  it('escapes the backslash so an escape cannot be forged', () => {
    expect(printable(u('a\\x0db'))).toBe('a\\x5cx0db');
    expect(printable(u('a\\x0db'))).not.toBe(printable(u('a\rb')));
  });

  it('renders invalid UTF-8 without throwing and without raw control bytes', () => {
    const out = printable(Buffer.from([0x61, 0xff, 0x0a, 0x80, 0x9b]));
    expect(out).toMatch(/^a.\\x0a\\x80\\x9b$/u);
  });

  it('truncates long input at max and marks it', () => {
    const out = printable(u('x'.repeat(300)), 10);
    expect(out).toBe(`${'x'.repeat(10)}…`);
    expect(printable(u('a\n'.repeat(20)), 4)).toBe('a\\x0aa\\x0a…');
  });
});

describe('printable: log-safe rendering beyond C0/C1', () => {
  it('escapes bidi overrides and line separators', () => {
    const out = printable(Buffer.from('admin\u202egpj.exe\u2028x', 'utf8'));
    expect(out).toBe('admin\\u202egpj.exe\\u2028x');
  });

  it('does not garble a multi-byte character split by the cut', () => {
    const raw = Buffer.from('ab\u00e9\u00e9', 'utf8'); // a b é(2) é(2) = 6 bytes
    expect(printable(raw, 3)).toBe('ab…');
    expect(printable(raw, 4)).toBe('abé…');
  });
});

describe('identity: the plain ASCII fast path', () => {
  const bytes = fc.array(fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.constantFrom(0x20, 0x5c, 0x41, 0x09, 0x00, 0x7f, 0xc3, 0xa9, 0xe2, 0x80, 0xae)), { maxLength: 40 });

  it('renders and canonicalises every name as the general path does', () => {
    fc.assert(
      fc.property(bytes, fc.constantFrom(256, 255, 8, 1, 0), (b, max) => {
        const raw = Buffer.from(b);
        expect(printable(raw, max)).toBe(printableGeneral(raw, max));
        expect(checkUser(raw)).toEqual(checkUserGeneral(raw));
      }),
      { numRuns: 3000 },
    );
    expect(printable(Buffer.from('a\\b'))).toBe('a\\x5cb');
    expect(checkUser(Buffer.from(' Alice '))).toEqual({ ok: true, canonical: 'alice', display: ' Alice ' });
    expect(checkUser(Buffer.from('   '))).toMatchObject({ ok: false, reason: 'empty' });
  });
});
