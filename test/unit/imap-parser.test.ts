// Unit tests for the pure IMAP pre-auth parser. Every case is fed twice, as one chunk and
// byte by byte, and both runs must produce the same events. Pure: no sockets, no timers.
import { describe, expect, it } from 'vitest';
import {
  IMAP_LITERAL_MINUS_MAX_BYTES,
  IMAP_MAX_COMMAND_BYTES,
  IMAP_MAX_COMMAND_TOKENS,
  IMAP_MAX_LINE_BYTES,
  IMAP_MAX_LIST_DEPTH,
  IMAP_MAX_LITERAL_BYTES,
  SASL_MAX_TOKEN_BYTES,
} from '../../src/bounds.js';
import { ImapParser, type ImapArg, type ImapEvent, type ImapParserOptions } from '../../src/protocols/imap/parser.js';

type Hook = (ev: ImapEvent, p: ImapParser) => void;

function drain(p: ImapParser, out: ImapEvent[], hook?: Hook): void {
  for (let ev = p.next(); ev; ev = p.next()) {
    out.push(ev);
    hook?.(ev, p);
  }
}

/** Feeds input as one chunk; returns events and the largest buffer seen. */
function feedWhole(input: Buffer, hook?: Hook, opts?: ImapParserOptions) {
  const p = new ImapParser(opts);
  const events: ImapEvent[] = [];
  p.push(input);
  const maxBuffered = p.bufferedBytes;
  drain(p, events, hook);
  return { events, maxBuffered, parser: p };
}

/** Feeds input one byte at a time, pulling events after every byte. */
function feedBytes(input: Buffer, hook?: Hook, opts?: ImapParserOptions) {
  const p = new ImapParser(opts);
  const events: ImapEvent[] = [];
  let maxBuffered = 0;
  for (let i = 0; i < input.length; i++) {
    p.push(input.subarray(i, i + 1));
    maxBuffered = Math.max(maxBuffered, p.bufferedBytes);
    drain(p, events, hook);
  }
  return { events, maxBuffered, parser: p };
}

/** Runs a case both ways, asserts identical event sequences, returns the whole-chunk run. */
function parse(input: string | Buffer, hook?: Hook, opts?: ImapParserOptions) {
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const whole = feedWhole(buf, hook, opts);
  const bytes = feedBytes(buf, hook, opts);
  expect(bytes.events).toEqual(whole.events);
  return { ...whole, bytewiseMaxBuffered: bytes.maxBuffered };
}

/** Compact view: atoms as-is, strings in double quotes (atoms cannot contain "), lists as arrays. */
type Shown = string | Shown[];
const show = (a: ImapArg): Shown =>
  a.kind === 'atom' ? a.value : a.kind === 'string' ? `"${a.value.toString('latin1')}"` : a.items.map(show);
const view = (events: ImapEvent[]) =>
  events.map((e) => (e.type === 'command' ? { cmd: e.tag, verb: e.verb, args: e.args.map(show) } : e));

describe('IMAP parser: commands, tags, atoms', () => {
  it('parses a simple command and upper-cases the verb', () => {
    const { events } = parse('a1 noop\r\n');
    expect(view(events)).toEqual([{ cmd: 'a1', verb: 'NOOP', args: [] }]);
  });

  it('parses atom arguments', () => {
    const { events } = parse('A001 LOGIN alice s3cr3t!\r\n');
    expect(view(events)).toEqual([{ cmd: 'A001', verb: 'LOGIN', args: ['alice', 's3cr3t!'] }]);
  });

  it('refuses a tag containing "+", a non-atom tag, and a tag with 8-bit bytes', () => {
    expect(parse('a+1 NOOP\r\n').events).toEqual([{ type: 'bad', tag: '*', text: 'Invalid tag', fatal: false }]);
    expect(parse('"a" NOOP\r\n').events).toEqual([{ type: 'bad', tag: '*', text: 'Invalid tag', fatal: false }]);
    expect(parse(Buffer.from('t\xe9 NOOP\r\n', 'latin1')).events).toEqual([
      { type: 'bad', tag: '*', text: 'Invalid tag', fatal: false },
    ]);
  });

  it('a tag without a command is a non-fatal BAD carrying the tag', () => {
    expect(parse('a1\r\n').events).toEqual([{ type: 'bad', tag: 'a1', text: 'Missing command', fatal: false }]);
  });

  it('control characters and a stray CR inside a line are refused, the next command still parses', () => {
    const { events } = parse('a1 LOGIN al\x01ice x\r\na2 NOOP\rx\r\na3 NOOP\r\n');
    expect(view(events)).toEqual([
      { type: 'bad', tag: 'a1', text: 'Invalid character in atom', fatal: false },
      { type: 'bad', tag: 'a2', text: 'Invalid character in atom', fatal: false },
      { cmd: 'a3', verb: 'NOOP', args: [] },
    ]);
  });

  it('parses pipelined commands in one chunk in order and ignores empty lines', () => {
    const { events } = parse('a NOOP\r\n\r\nb CAPABILITY\r\nc LOGOUT\r\n');
    expect(view(events)).toEqual([
      { cmd: 'a', verb: 'NOOP', args: [] },
      { cmd: 'b', verb: 'CAPABILITY', args: [] },
      { cmd: 'c', verb: 'LOGOUT', args: [] },
    ]);
  });

  it('bare LF ends a line exactly like CRLF (documented leniency)', () => {
    const lf = parse('a NOOP\nb LOGIN x y\n').events;
    const crlf = parse('a NOOP\r\nb LOGIN x y\r\n').events;
    expect(lf).toEqual(crlf);
    expect(lf).toHaveLength(2);
  });

  it('waits for the end of the line before producing anything', () => {
    const { events, parser } = parse('a NOOP');
    expect(events).toEqual([]);
    expect(parser.bufferedBytes).toBe(6);
  });
});

describe('IMAP parser: quoted strings', () => {
  it('decodes \\" and \\\\ escapes and keeps spaces and 8-bit bytes', () => {
    const { events } = parse(Buffer.from('a LOGIN "al\\"ice" "p\\\\w d \xc3\xa9"\r\n', 'latin1'));
    expect(view(events)).toEqual([{ cmd: 'a', verb: 'LOGIN', args: ['"al"ice"', '"p\\w d \xc3\xa9"'] }]);
  });

  it('an empty quoted string is an empty string argument', () => {
    const ev = parse('a LOGIN "" ""\r\n').events[0]!;
    expect(ev.type === 'command' && ev.args).toEqual([
      { kind: 'string', value: Buffer.alloc(0) },
      { kind: 'string', value: Buffer.alloc(0) },
    ]);
  });

  it('refuses unknown escapes, unterminated quotes and NUL inside quotes', () => {
    const { events } = parse('a LOGIN "a\\x" y\r\nb LOGIN "abc\r\nc LOGIN "a\x00b" y\r\nd NOOP\r\n');
    expect(view(events)).toEqual([
      { type: 'bad', tag: 'a', text: 'Invalid quoted string', fatal: false },
      { type: 'bad', tag: 'b', text: 'Invalid quoted string', fatal: false },
      { type: 'bad', tag: 'c', text: 'Invalid quoted string', fatal: false },
      { cmd: 'd', verb: 'NOOP', args: [] },
    ]);
  });
});

describe('IMAP parser: literals', () => {
  it('a synchronizing literal asks for continuation, then reads exactly n bytes', () => {
    const { events } = parse('a LOGIN {5}\r\nalice {5}\r\nse\r\nt\r\n');
    expect(view(events)).toEqual([
      { type: 'continue', tag: 'a', verb: 'LOGIN' },
      { type: 'continue', tag: 'a', verb: 'LOGIN' },
      { cmd: 'a', verb: 'LOGIN', args: ['"alice"', '"se\r\nt"'] },
    ]);
  });

  it('a non-synchronizing literal {n+} needs no continuation', () => {
    const { events } = parse('a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n');
    expect(view(events)).toEqual([{ cmd: 'a', verb: 'LOGIN', args: ['"alice"', '"secret"'] }]);
  });

  it('literal bytes are never parsed as commands (nginx-tests a03 FOOBAR {10+})', () => {
    // {10+} takes "test test\r"; the LF then ends the command line.
    expect(view(parse('a03 FOOBAR {10+}\r\ntest test\r\n').events)).toEqual([
      { cmd: 'a03', verb: 'FOOBAR', args: ['"test test\r"'] },
    ]);
    expect(view(parse('a03 FOOBAR {9+}\r\ntest test\r\n').events)).toEqual([
      { cmd: 'a03', verb: 'FOOBAR', args: ['"test test"'] },
    ]);
    const inner = 'b LOGIN x y\r\n';
    expect(view(parse(`a FOO {${inner.length}+}\r\n${inner}\r\n`).events)).toEqual([
      { cmd: 'a', verb: 'FOO', args: [`"${inner}"`] },
    ]);
  });

  it('a zero-length literal is an empty string', () => {
    expect(view(parse('a LOGIN {0+}\r\n {1+}\r\nx\r\n').events)).toEqual([{ cmd: 'a', verb: 'LOGIN', args: ['""', '"x"'] }]);
  });

  it('only SP, ")" or CRLF may follow a literal', () => {
    const { events } = parse('a LOGIN {5+}\r\naliceX y\r\nb ID ({1+}\r\nx)\r\nc NOOP\r\n');
    expect(view(events)).toEqual([
      { type: 'bad', tag: 'a', text: 'Expected SP or CRLF after literal', fatal: false },
      { cmd: 'b', verb: 'ID', args: [['"x"']] },
      { cmd: 'c', verb: 'NOOP', args: [] },
    ]);
  });

  it('a literal marker must end the line', () => {
    expect(parse('a LOGIN {5} x\r\nb NOOP\r\n').events).toEqual([
      { type: 'bad', tag: 'a', text: 'Invalid literal', fatal: false },
      { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
    ]);
  });

  it('an absurd literal length is refused without wrapping and without continuation', () => {
    for (const n of ['99999999999999999999', '4294967296', '18446744073709551617', '00000000005']) {
      const { events } = parse(`a LOGIN {${n}}\r\nb NOOP\r\n`);
      expect(events).toEqual([
        { type: 'bad', tag: 'a', text: 'Literal too big', fatal: false },
        { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
      ]);
    }
  });

  it('an oversize {n} is refused without continuation; the largest allowed one is accepted', () => {
    expect(parse(`a LOGIN {${IMAP_MAX_LITERAL_BYTES + 1}}\r\n`).events).toEqual([
      { type: 'bad', tag: 'a', text: 'Literal too big', fatal: false },
    ]);
    expect(parse(`a LOGIN {${IMAP_MAX_LITERAL_BYTES}}\r\n`).events).toEqual([{ type: 'continue', tag: 'a', verb: 'LOGIN' }]);
  });

  it('an oversize {n+} is fatal and nothing after it is parsed', () => {
    const { events, parser } = parse(`a LOGIN {${IMAP_MAX_LITERAL_BYTES + 1}+}\r\nb NOOP\r\nc NOOP\r\n`);
    expect(events).toEqual([{ type: 'bad', tag: 'a', text: 'Literal too big', fatal: true }]);
    parser.push(Buffer.from('d NOOP\r\n'));
    expect(parser.next()).toBeNull();
    expect(parser.bufferedBytes).toBe(0);
  });

  it('{99999999999999999999+} is fatal', () => {
    expect(parse('a LOGIN {99999999999999999999+}\r\nb NOOP\r\n').events).toEqual([
      { type: 'bad', tag: 'a', text: 'Literal too big', fatal: true },
    ]);
  });

  it('literals cannot add up past the command bound', () => {
    const chunk = 'x'.repeat(7000);
    let input = 'a ID (';
    for (let i = 0; i < 5; i++) input += `{7000+}\r\n${chunk} `;
    const { events } = parse(`${input})\r\n`);
    expect(events).toEqual([{ type: 'bad', tag: 'a', text: 'Literal too big', fatal: true }]);
    expect(5 * 7000).toBeGreaterThan(IMAP_MAX_COMMAND_BYTES);
  });

  it('line segments between literals count toward the command bound', () => {
    const seg = ` ${'y'.repeat(7000)} {1+}\r\nz`;
    const { events } = parse(`a ID (${seg.repeat(5)})\r\n`);
    expect(events).toEqual([{ type: 'bad', tag: 'a', text: 'Command too long', fatal: true }]);
  });

  it('small non-sync literals in one command are read in a loop up to the token bound, then fatal', () => {
    // Tag, verb and "(" are three tokens: the rest of the bound are literals.
    const fits = `a ID (${'{1+}\r\nx '.repeat(IMAP_MAX_COMMAND_TOKENS - 3)})\r\n`;
    const [ev] = parse(fits).events;
    expect(ev?.type).toBe('command');
    if (ev?.type === 'command') expect((ev.args[0] as { items: ImapArg[] }).items).toHaveLength(IMAP_MAX_COMMAND_TOKENS - 3);
    // Thousands of them: refused at the bound; the line ends in {1+}, so its bytes would follow.
    let input = 'a ID (';
    while (input.length < IMAP_MAX_COMMAND_BYTES - 16) input += '{1+}\r\nx ';
    expect(parse(`${input})\r\nb NOOP\r\n`).events).toEqual([{ type: 'bad', tag: 'a', text: 'Too many arguments', fatal: true }]);
  });

  it('a malformed line announcing {n+} is fatal: the literal bytes that follow never run', () => {
    const inner = 'b LOGIN alice secret\r\n';
    const { events } = parse(`a FOO "bad\\q" {${inner.length}+}\r\n${inner}c NOOP\r\n`);
    expect(events).toEqual([{ type: 'bad', tag: 'a', text: 'Invalid quoted string', fatal: true }]);
  });

  it('a malformed line announcing a sync {n} is a plain BAD without continuation', () => {
    const { events } = parse('a FOO "bad\\q" {5}\r\nb NOOP\r\n');
    expect(events).toEqual([
      { type: 'bad', tag: 'a', text: 'Invalid quoted string', fatal: false },
      { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
    ]);
  });
});

describe('IMAP parser: lists', () => {
  const nest = (d: number) => `${'('.repeat(d)}x${')'.repeat(d)}`;

  it(`accepts lists nested ${IMAP_MAX_LIST_DEPTH} deep and refuses one more`, () => {
    const ok = parse(`a ID ${nest(IMAP_MAX_LIST_DEPTH)}\r\n`).events;
    expect(view(ok)).toEqual([{ cmd: 'a', verb: 'ID', args: [[[[['x']]]]] }]);
    const deep = parse(`a ID ${nest(IMAP_MAX_LIST_DEPTH + 1)}\r\nb NOOP\r\n`).events;
    expect(deep).toEqual([
      { type: 'bad', tag: 'a', text: 'Lists nested too deeply', fatal: false },
      { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
    ]);
    const huge = parse(`a ID ${'('.repeat(5000)}\r\n`).events;
    expect(huge).toEqual([{ type: 'bad', tag: 'a', text: 'Lists nested too deeply', fatal: false }]);
  });

  it('parses ID lists of strings and NIL', () => {
    const { events } = parse('a ID ("name" "mutt" "version" NIL)\r\n');
    expect(view(events)).toEqual([{ cmd: 'a', verb: 'ID', args: [['"name"', '"mutt"', '"version"', 'NIL']] }]);
  });

  it('refuses unbalanced parentheses', () => {
    expect(parse('a ID (x\r\nb ID x)\r\n').events).toEqual([
      { type: 'bad', tag: 'a', text: 'Unclosed list', fatal: false },
      { type: 'bad', tag: 'b', text: 'Unexpected )', fatal: false },
    ]);
  });
});

describe('IMAP parser: tokens per command, every "(" counted when opened (Dovecot CVE-2026-27857)', () => {
  const pairs = (n: number) => Array.from({ length: n }, (_, i) => `"f${i}" "v${i}"`).join(' ');
  const atoms = (n: number) => `a NOOP${' x'.repeat(n - 2)}\r\n`;

  it(`an ID with 30 field-value pairs (RFC 2971 §3.3) fits; ${IMAP_MAX_COMMAND_TOKENS} tokens pass, one more is BAD and the session goes on`, () => {
    expect(view(parse(`a ID (${pairs(30)})\r\n`).events)).toEqual([{ cmd: 'a', verb: 'ID', args: [pairs(30).split(' ')] }]);
    expect(parse(atoms(IMAP_MAX_COMMAND_TOKENS)).events).toMatchObject([{ type: 'command', verb: 'NOOP' }]);
    expect(parse(`${atoms(IMAP_MAX_COMMAND_TOKENS + 1)}b NOOP\r\n`).events).toEqual([
      { type: 'bad', tag: 'a', text: 'Too many arguments', fatal: false },
      { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
    ]);
  });

  it.each(['()', '(x) ', '((()))', '""', 'x ', '(""'])('thousands of %j in one line are refused at the bound, never built', (unit) => {
    const line = `a ID ${unit.repeat(Math.floor((IMAP_MAX_LINE_BYTES - 16) / unit.length))}\r\n`;
    expect(parse(`${line}b NOOP\r\n`).events).toEqual([
      { type: 'bad', tag: 'a', text: unit === '(""' ? 'Lists nested too deeply' : 'Too many arguments', fatal: false },
      { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
    ]);
  });

  it('nesting carries over literals: the list a literal sits in stays open on the next line, and stays bounded', () => {
    // Each segment opens one more list around a literal; the one past the depth bound is
    // refused on a line ending in {1+}: its byte follows unasked, so the refusal is fatal.
    const nonSync = `a ID ${'({1+}\r\nx '.repeat(IMAP_MAX_LIST_DEPTH + 1)}${')'.repeat(IMAP_MAX_LIST_DEPTH + 1)}\r\nb NOOP\r\n`;
    expect(parse(nonSync).events).toEqual([{ type: 'bad', tag: 'a', text: 'Lists nested too deeply', fatal: true }]);
    // Synchronizing: each literal is asked for; the refused one is not, and the session goes on.
    const sync = `a ID ${'({1}\r\nx '.repeat(IMAP_MAX_LIST_DEPTH)}({1}\r\nb NOOP\r\n`;
    expect(parse(sync).events).toEqual([
      ...Array<ImapEvent>(IMAP_MAX_LIST_DEPTH).fill({ type: 'continue', tag: 'a', verb: 'ID' }),
      { type: 'bad', tag: 'a', text: 'Lists nested too deeply', fatal: false },
      { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
    ]);
    const inside = parse(`a ID ${'({1+}\r\nx '.repeat(IMAP_MAX_LIST_DEPTH)}${')'.repeat(IMAP_MAX_LIST_DEPTH)}\r\n`).events;
    expect(view(inside)).toEqual([{ cmd: 'a', verb: 'ID', args: [['"x"', ['"x"', ['"x"', ['"x"']]]]] }]);
  });

  it('the token count carries over literals too: empty literals past the bound are fatal', () => {
    expect(parse(`a ID (${'{0+}\r\n '.repeat(IMAP_MAX_COMMAND_TOKENS)})\r\nb NOOP\r\n`).events).toEqual([
      { type: 'bad', tag: 'a', text: 'Too many arguments', fatal: true },
    ]);
  });

  it('a brace inside a quoted string is text, not a literal', () => {
    expect(view(parse('a ID ("x {5+}" NIL)\r\nb NOOP\r\n').events)).toEqual([
      { cmd: 'a', verb: 'ID', args: [['"x {5+}"', 'NIL']] },
      { cmd: 'b', verb: 'NOOP', args: [] },
    ]);
  });
});

describe('IMAP parser: LITERAL- (RFC 7888 §4), only where it was advertised', () => {
  const minus: ImapParserOptions = { literalMinus: true };
  const MAX = IMAP_LITERAL_MINUS_MAX_BYTES;
  const tooBig = (tag: string): ImapEvent => ({ type: 'bad', tag, text: `Non-synchronizing literal over ${MAX} octets`, fatal: true, code: 'TOOBIG' });

  it(`{${MAX}+} is read as usual; {${MAX + 1}+} is TOOBIG and fatal, and the bytes sent with it never run`, () => {
    const ok = parse(`a LOGIN {5+}\r\nalice {${MAX}+}\r\n${'p'.repeat(MAX)}\r\n`, undefined, minus).events;
    expect(view(ok)).toEqual([{ cmd: 'a', verb: 'LOGIN', args: ['"alice"', `"${'p'.repeat(MAX)}"`] }]);
    const inner = 'b LOGOUT\r\nc LOGIN alice secret\r\n';
    const payload = inner.repeat(Math.ceil((MAX + 1) / inner.length)).slice(0, MAX + 1);
    const { events, parser } = parse(`a LOGIN {5+}\r\nalice {${MAX + 1}+}\r\n${payload}\r\nd NOOP\r\n`, undefined, minus);
    expect(events).toEqual([tooBig('a')]);
    expect(parser.bufferedBytes).toBe(0);
    parser.push(Buffer.from('e NOOP\r\n'));
    expect(parser.next()).toBeNull();
  });

  it('in a list, as a first literal, with leading zeros or absurd digits: the same TOOBIG, under the command tag', () => {
    for (const [tag, marker] of [['t1', `({${MAX + 1}+}`], ['t2', '{99999999999999999999+}'], ['t3', `{000${MAX + 1}+}`], ['t4', `{${IMAP_MAX_LITERAL_BYTES + 1}+}`]]) {
      expect(parse(`${tag} ID ${marker}\r\nx\r\n`, undefined, minus).events).toEqual([tooBig(tag!)]);
    }
  });

  it('synchronizing literals keep their own bound: {4097} asks for "+", an oversize {n} is a plain BAD', () => {
    expect(parse(`a LOGIN {${MAX + 1}}\r\n`, undefined, minus).events).toEqual([{ type: 'continue', tag: 'a', verb: 'LOGIN' }]);
    expect(parse(`a LOGIN {${IMAP_MAX_LITERAL_BYTES + 1}}\r\nb NOOP\r\n`, undefined, minus).events).toEqual([
      { type: 'bad', tag: 'a', text: 'Literal too big', fatal: false },
      { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
    ]);
  });

  it(`under LITERAL+ (the default) {${MAX + 1}+} is read: the 4096-octet cap is LITERAL-'s alone`, () => {
    const { events } = parse(`a LOGIN {5+}\r\nalice {${MAX + 1}+}\r\n${'p'.repeat(MAX + 1)}\r\n`);
    expect(events).toMatchObject([{ type: 'command', verb: 'LOGIN' }]);
    expect(parse(`a LOGIN {${IMAP_MAX_LITERAL_BYTES + 1}+}\r\n`).events).toEqual([{ type: 'bad', tag: 'a', text: 'Literal too big', fatal: true }]);
  });
});

describe('IMAP parser: byte bounds', () => {
  it('accepts a line just under the bound', () => {
    const line = `a LOGIN ${'x'.repeat(IMAP_MAX_LINE_BYTES - 9)}`;
    expect(line.length).toBe(IMAP_MAX_LINE_BYTES - 1);
    expect(parse(`${line}\r\n`).events[0]!.type).toBe('command');
  });

  it('an oversize line is fatal, byte by byte it never buffers past the bound', () => {
    const line = `a LOGIN ${'x'.repeat(IMAP_MAX_LINE_BYTES)}`;
    const r = parse(`${line}\r\nb NOOP\r\n`);
    expect(r.events).toEqual([{ type: 'bad', tag: '*', text: 'Line too long', fatal: true }]);
    expect(r.bytewiseMaxBuffered).toBeLessThanOrEqual(IMAP_MAX_LINE_BYTES + 1);
    expect(r.parser.bufferedBytes).toBe(0);
  });

  it('a line with no newline at all is cut off at the bound and later bytes are dropped', () => {
    const p = new ImapParser();
    const events: ImapEvent[] = [];
    let max = 0;
    for (let i = 0; i < 100; i++) {
      p.push(Buffer.alloc(1000, 0x61));
      max = Math.max(max, p.bufferedBytes);
      drain(p, events);
    }
    expect(events).toEqual([{ type: 'bad', tag: '*', text: 'Line too long', fatal: true }]);
    expect(max).toBeLessThanOrEqual(IMAP_MAX_LINE_BYTES + 1000);
    expect(p.bufferedBytes).toBe(0);
  });

  it('an oversize line after a literal carries the command tag', () => {
    const { events } = parse(`t7 LOGIN {1+}\r\nx ${'y'.repeat(IMAP_MAX_LINE_BYTES + 1)}\r\n`);
    expect(events).toEqual([{ type: 'bad', tag: 't7', text: 'Line too long', fatal: true }]);
  });
});

describe('IMAP parser: takeBuffered, discard, expectLine', () => {
  it('takeBuffered returns the unparsed bytes behind a command exactly as sent', () => {
    const rest = 'b SELECT "INBOX"\r\nc FE';
    const input = Buffer.from(`a LOGIN x y\r\n${rest}`);
    // One chunk: stop pulling after the first event.
    const p1 = new ImapParser();
    p1.push(input);
    expect(p1.next()).toMatchObject({ type: 'command', verb: 'LOGIN' });
    // Byte by byte: pull until the command appears, then only push.
    const p2 = new ImapParser();
    let seen = false;
    for (let i = 0; i < input.length; i++) {
      p2.push(input.subarray(i, i + 1));
      if (!seen) seen = p2.next()?.type === 'command';
    }
    for (const p of [p1, p2]) {
      expect(p.takeBuffered().toString('latin1')).toBe(rest);
      expect(p.bufferedBytes).toBe(0);
      expect(p.next()).toBeNull();
    }
  });

  it('discard drops buffered bytes and a half-parsed command', () => {
    const p = new ImapParser();
    p.push(Buffer.from('a LOGIN {5}\r\nal'));
    expect(p.next()).toEqual({ type: 'continue', tag: 'a', verb: 'LOGIN' });
    p.discard();
    expect(p.bufferedBytes).toBe(0);
    p.push(Buffer.from('ice\r\nb NOOP\r\n'));
    // "ice" is now the start of a command line: parsed as tag "ice" with no verb.
    expect(p.next()).toEqual({ type: 'bad', tag: 'ice', text: 'Missing command', fatal: false });
    expect(p.next()).toMatchObject({ type: 'command', tag: 'b', verb: 'NOOP' });
  });

  it('expectLine returns the next line raw (SASL response), then commands resume', () => {
    const hook: Hook = (ev, p) => {
      if (ev.type === 'command' && ev.verb === 'AUTHENTICATE') p.expectLine(SASL_MAX_TOKEN_BYTES);
    };
    const { events } = parse('a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n', hook);
    expect(view(events)).toEqual([
      { cmd: 'a', verb: 'AUTHENTICATE', args: ['PLAIN'] },
      { type: 'line', text: 'AGFsaWNlAHNlY3JldA==' },
      { cmd: 'b', verb: 'NOOP', args: [] },
    ]);
  });

  it('a SASL line is not tokenised: "*", spaces and braces come through as text', () => {
    const hook: Hook = (ev, p) => {
      if (ev.type === 'command') p.expectLine(SASL_MAX_TOKEN_BYTES);
    };
    expect(view(parse('a AUTHENTICATE LOGIN\r\n*\r\n', hook).events)[1]).toEqual({ type: 'line', text: '*' });
    expect(view(parse('a AUTHENTICATE LOGIN\r\nx {5+}\r\n', hook).events)[1]).toEqual({ type: 'line', text: 'x {5+}' });
  });

  it('discard cancels expectLine', () => {
    const p = new ImapParser();
    p.expectLine(SASL_MAX_TOKEN_BYTES);
    p.discard();
    p.push(Buffer.from('a NOOP\r\n'));
    expect(p.next()).toMatchObject({ type: 'command', verb: 'NOOP' });
  });

  const saslHook: Hook = (ev, p) => {
    if (ev.type === 'command' && ev.verb === 'AUTHENTICATE') p.expectLine(SASL_MAX_TOKEN_BYTES);
  };

  it(`a SASL line is bounded by its own limit, CRLF excluded: ${SASL_MAX_TOKEN_BYTES} octets pass, longer than a command line`, () => {
    const token = 'A'.repeat(SASL_MAX_TOKEN_BYTES);
    expect(token.length).toBeGreaterThan(IMAP_MAX_LINE_BYTES);
    for (const end of ['\r\n', '\n']) {
      const { events } = parse(`a AUTHENTICATE PLAIN\r\n${token}${end}b NOOP\r\n`, saslHook);
      expect(view(events).slice(1)).toEqual([{ type: 'line', text: token }, { cmd: 'b', verb: 'NOOP', args: [] }]);
    }
  });

  it('an oversize SASL line is fatal, byte by byte it never buffers past the bound', () => {
    for (const end of ['\r\n', '\n', '']) {
      const r = parse(`a AUTHENTICATE PLAIN\r\n${'A'.repeat(SASL_MAX_TOKEN_BYTES + 1)}${end}b NOOP\r\n`, saslHook);
      expect(r.events.slice(1)).toEqual([{ type: 'bad', tag: '*', text: 'Line too long', fatal: true }]);
      expect(r.bytewiseMaxBuffered).toBeLessThanOrEqual(SASL_MAX_TOKEN_BYTES + 1);
      expect(r.parser.bufferedBytes).toBe(0);
    }
  });
});
