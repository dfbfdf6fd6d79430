// Property-based fuzzing of the pure readers under the machines: the bounded line reader
// (POP3, SMTP), the IMAP command parser and the shared SASL decoding. Arbitrary bytes in
// arbitrary reads never throw, never buffer past the bounds, and give the same result
// however they are cut; literal bytes never become commands; strict base64 and PLAIN accept
// exactly what they should. FUZZ_RUNS sets the depth (npm run fuzz).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  IMAP_LITERAL_MINUS_MAX_BYTES,
  IMAP_MAX_COMMAND_TOKENS,
  IMAP_MAX_LINE_BYTES,
  IMAP_MAX_LITERAL_BYTES,
  SASL_MAX_FIELD_BYTES,
  SASL_MAX_TOKEN_BYTES,
} from '../../src/bounds.js';
import { ImapParser, type ImapArg, type ImapEvent, type ImapParserOptions } from '../../src/protocols/imap/parser.js';
import { LineReader, type LineEvent } from '../../src/protocols/line-reader.js';
import { decodeBase64Strict, decodePlain, isStrictBase64, SaslExchange, SASL_MECHANISMS } from '../../src/protocols/sasl.js';
import { chunk, chunkingArb, FUZZ_TIMEOUT_MS, fuzz, imapSoupArb, pop3SoupArb, rawBytesArb, type Chunking } from '../helpers/fuzz.js';

const anyStream = fc.oneof(rawBytesArb(600), pop3SoupArb, imapSoupArb);

/** A plain check for hot loops (expect() per chunk would dominate the run time). */
function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

/** Atoms, strings and lists in `args`, at any depth, each list counted once. */
function tokens(args: ImapArg[]): number {
  return args.reduce((n, a) => n + 1 + (a.kind === 'list' ? tokens(a.items) : 0), 0);
}

describe('fuzz: line reader', () => {
  function readAll(data: Buffer, how: Chunking, limit: number) {
    const r = new LineReader(() => limit);
    const events: LineEvent[] = [];
    for (const c of chunk(data, how)) {
      r.push(c);
      for (let e = r.next(); e; e = r.next()) events.push(e);
      // Drained: what stays is less than a line, and within the bound (plus a final CR).
      check(r.bufferedBytes <= limit + 1, `buffered ${r.bufferedBytes} bytes with limit ${limit}`);
      check(r.bufferedBytes === 0 || !events.some((e) => e.type === 'too-long'), 'bytes kept after too-long');
    }
    return { events, rest: r.takeBuffered() };
  }

  it('any bytes, any reads, any limit: bounded, and the same lines as one read', async () => {
    await fuzz(
      fc.property(anyStream, chunkingArb, fc.integer({ min: 0, max: 40 }), (data, how, limit) => {
        const whole = readAll(data, { kind: 'whole' }, limit);
        const cut = readAll(data, how, limit);
        expect(cut.events).toEqual(whole.events);
        expect(cut.rest).toEqual(whole.rest);
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('lines hold no LF, never exceed the limit, and together with the rest rebuild the input', async () => {
    await fuzz(
      fc.property(anyStream, chunkingArb, fc.integer({ min: 0, max: 600 }), (data, how, limit) => {
        const { events, rest } = readAll(data, how, limit);
        const lines = events.flatMap((e) => (e.type === 'line' ? [e.text] : []));
        for (const l of lines) check(!l.includes('\n') && l.length <= limit, `line ${JSON.stringify(l)} with limit ${limit}`);
        if (events.some((e) => e.type === 'too-long')) {
          expect(events.at(-1)).toEqual({ type: 'too-long' });
          expect(rest.length).toBe(0);
          return;
        }
        // Each line came from the input verbatim, ended by LF or CRLF.
        let at = 0;
        for (const l of lines) {
          const raw = Buffer.from(l, 'latin1');
          check(data.subarray(at, at + raw.length).equals(raw), `line ${JSON.stringify(l)} is not the input at ${at}`);
          at += raw.length;
          at += data[at] === 0x0d && data[at + 1] === 0x0a ? 2 : 1;
        }
        expect(data.subarray(at)).toEqual(rest);
      }),
    );
  }, FUZZ_TIMEOUT_MS);
});

describe('fuzz: IMAP parser', () => {
  // A command line, a literal still arriving, or a SASL line (its text, then a final CR).
  const BOUND = Math.max(IMAP_MAX_LINE_BYTES, IMAP_MAX_LITERAL_BYTES, SASL_MAX_TOKEN_BYTES + 1);
  const TAG = /^(?:\*|[^\x00-\x20\x7f-\xff(){%*"\\+]+)$/;

  /** Parse like the machine: `choices` decide (by event index) whether a continuation is
   *  refused and whether a command opens a SASL line, so every cut sees the same decisions. */
  function parseAll(data: Buffer, how: Chunking, choices: boolean[], opts?: ImapParserOptions) {
    const p = new ImapParser(opts);
    const events: ImapEvent[] = [];
    const choose = () => choices.length > 0 && choices[events.length % choices.length]!;
    for (const c of chunk(data, how)) {
      p.push(c);
      for (let e = p.next(); e; e = p.next()) {
        const refuse = choose();
        events.push(e);
        if (e.type === 'continue' && refuse) p.refuseLiteral();
        if (e.type === 'command' && e.verb === 'AUTHENTICATE' && refuse) p.expectLine(SASL_MAX_TOKEN_BYTES);
        if (e.type === 'bad' && e.fatal) check(p.bufferedBytes === 0, 'bytes kept after a fatal error');
        if (e.type === 'command') check(2 + tokens(e.args) <= IMAP_MAX_COMMAND_TOKENS, `${2 + tokens(e.args)} tokens in one command`);
      }
      check(p.bufferedBytes <= BOUND, `buffered ${p.bufferedBytes} bytes`);
    }
    return events;
  }

  it('any bytes, any reads: no throw, bounded, the same events as one read', async () => {
    await fuzz(
      fc.property(fc.oneof(imapSoupArb, rawBytesArb(600)), chunkingArb, fc.array(fc.boolean(), { maxLength: 5 }), (data, how, choices) => {
        expect(parseAll(data, how, choices)).toEqual(parseAll(data, { kind: 'whole' }, choices));
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('under LITERAL-: any bytes, any reads, the same events as one read; TOOBIG only for a {n+} over 4096, and last', async () => {
    const minus = { literalMinus: true };
    const nearCap = fc.integer({ min: IMAP_LITERAL_MINUS_MAX_BYTES - 2, max: IMAP_LITERAL_MINUS_MAX_BYTES + 2 }).map((n) => Buffer.from(`a LOGIN {${n}+}\r\n`));
    const stream = fc.array(fc.oneof(imapSoupArb, nearCap, rawBytesArb(200)), { minLength: 1, maxLength: 3 }).map((parts) => Buffer.concat(parts));
    await fuzz(
      fc.property(stream, chunkingArb, (data, how) => {
        const events = parseAll(data, how, [], minus);
        expect(events).toEqual(parseAll(data, { kind: 'whole' }, [], minus));
        const big = events.findIndex((e) => e.type === 'bad' && e.code === 'TOOBIG');
        if (big >= 0) {
          expect(big).toBe(events.length - 1);
          expect(events[big]).toMatchObject({ fatal: true });
        }
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('nothing follows a fatal error, and every tag it reports is a valid tag or "*"', async () => {
    await fuzz(
      fc.property(fc.oneof(imapSoupArb, rawBytesArb(600)), chunkingArb, (data, how) => {
        const events = parseAll(data, how, []);
        const fatal = events.findIndex((e) => e.type === 'bad' && e.fatal);
        if (fatal >= 0) expect(fatal).toBe(events.length - 1);
        for (const e of events) {
          if (e.type === 'bad' || e.type === 'command' || e.type === 'continue') check(TAG.test(e.tag), `tag ${JSON.stringify(e.tag)}`);
        }
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('literal bytes are never run as commands, whatever they contain (nginx a03 FOOBAR {10+})', async () => {
    const payload = fc.oneof(rawBytesArb(120), imapSoupArb.map((b) => b.subarray(0, 200)));
    await fuzz(
      fc.property(payload, fc.boolean(), chunkingArb, (literal, sync, how) => {
        const head = Buffer.from(`a03 FOOBAR {${literal.length}${sync ? '' : '+'}}\r\n`);
        const events = parseAll(Buffer.concat([head, literal, Buffer.from('\r\nb NOOP\r\n')]), how, []);
        const expected: ImapEvent[] = [
          ...(sync ? [{ type: 'continue' as const, tag: 'a03', verb: 'FOOBAR' }] : []),
          { type: 'command', tag: 'a03', verb: 'FOOBAR', args: [{ kind: 'string', value: literal }] },
          { type: 'command', tag: 'b', verb: 'NOOP', args: [] },
        ];
        expect(events).toEqual(expected);
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('a literal length of any size or digit count never wraps: over the bound it is refused', async () => {
    await fuzz(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 40n }), fc.boolean(), (n, sync) => {
        const p = new ImapParser();
        p.push(Buffer.from(`a LOGIN {${n}${sync ? '' : '+'}}\r\n`));
        const e = p.next();
        if (n <= BigInt(IMAP_MAX_LITERAL_BYTES)) {
          expect(e).toEqual(sync ? { type: 'continue', tag: 'a', verb: 'LOGIN' } : null);
        } else {
          expect(e).toMatchObject({ type: 'bad', tag: 'a', fatal: !sync });
          expect(p.bufferedBytes).toBe(0);
        }
      }),
    );
  }, FUZZ_TIMEOUT_MS);
});

describe('fuzz: IMAP parser under LITERAL-', () => {
  it('a literal length of any size: {n+} over 4096 is TOOBIG and fatal, {n} keeps the ordinary bound', async () => {
    await fuzz(
      fc.property(fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 40n }), fc.bigInt({ min: 4000n, max: 9000n })), fc.boolean(), (n, sync) => {
        const p = new ImapParser({ literalMinus: true });
        p.push(Buffer.from(`a LOGIN {${n}${sync ? '' : '+'}}\r\n`));
        const e = p.next();
        if (!sync && n > BigInt(IMAP_LITERAL_MINUS_MAX_BYTES)) expect(e).toMatchObject({ type: 'bad', tag: 'a', fatal: true, code: 'TOOBIG' });
        else if (n <= BigInt(IMAP_MAX_LITERAL_BYTES)) expect(e).toEqual(sync ? { type: 'continue', tag: 'a', verb: 'LOGIN' } : null);
        else expect(e).toEqual({ type: 'bad', tag: 'a', text: 'Literal too big', fatal: false });
        if (e?.type === 'bad' && e.fatal) expect(p.bufferedBytes).toBe(0);
      }),
    );
  }, FUZZ_TIMEOUT_MS);
});

describe('fuzz: SASL', () => {
  it('strict base64: every encoding of bytes within the bound decodes back to them', async () => {
    await fuzz(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const b = Buffer.from(bytes);
        expect(decodeBase64Strict(b.toString('base64'))).toEqual(b);
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('strict base64: any text outside the alphabet, mis-padded or over the bound is refused, never thrown', async () => {
    const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.base64String({ maxLength: 40 }).map((s) => `${s.slice(0, -1)}${s.length ? '\x00' : ''}`));
    await fuzz(
      fc.property(text, (s) => {
        const r = decodeBase64Strict(s);
        if (r === null) return;
        // Whatever is accepted is canonical-length base64 of what it decodes to ("=" is empty).
        expect(s === '=' || (s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s))).toBe(true);
        expect(r.toString('base64').length).toBe(s === '=' ? 0 : s.length);
      }),
    );
    expect(decodeBase64Strict('A'.repeat(SASL_MAX_TOKEN_BYTES + 4))).toBeNull();
  }, FUZZ_TIMEOUT_MS);

  it('strict base64 agrees with the reference (the regular expression it replaced, then Node\'s decoder) on almost-base64', async () => {
    const REFERENCE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
    const reference = (s: string) => (s === '=' ? Buffer.alloc(0) : s.length <= SASL_MAX_TOKEN_BYTES && REFERENCE.test(s) ? Buffer.from(s, 'base64') : null);
    const unit = fc.constantFrom(...'AQgwz09+/=', '=', '=', '!', '-', '_', ' ', '\r', '\u00e9', '\u0141');
    const almost = fc.oneof(
      fc.string({ unit, maxLength: 24 }),
      // Valid base64 with one character changed, dropped or added somewhere.
      fc.tuple(fc.uint8Array({ maxLength: 30 }), fc.nat(), unit, fc.constantFrom(0, 1, 2)).map(([b, at, c, how]) => {
        const s = Buffer.from(b).toString('base64');
        const i = s.length ? at % s.length : 0;
        return how === 0 ? s.slice(0, i) + c + s.slice(i + 1) : how === 1 ? s.slice(0, i) + s.slice(i + 1) : s.slice(0, i) + c + s.slice(i);
      }),
    );
    await fuzz(
      fc.property(almost, (s) => {
        expect(decodeBase64Strict(s)).toEqual(reference(s));
        expect(isStrictBase64(s)).toBe(REFERENCE.test(s));
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('PLAIN: credentials only from exactly two NULs and a non-empty authcid, copied, within bounds', async () => {
    const field = fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.constant(new Uint8Array(SASL_MAX_FIELD_BYTES + 1).fill(0x61)));
    await fuzz(
      fc.property(fc.array(field, { minLength: 1, maxLength: 5 }), (parts) => {
        const raw = Buffer.concat(parts.map((p, i) => (i === 0 ? Buffer.from(p) : Buffer.concat([Buffer.from([0]), Buffer.from(p)]))));
        const r = decodePlain(raw);
        if (typeof r === 'string') return;
        const nuls = [...raw].filter((b) => b === 0).length;
        expect(nuls).toBe(2);
        const [authzid, user, password] = [raw.subarray(0, raw.indexOf(0)), raw.subarray(raw.indexOf(0) + 1, raw.lastIndexOf(0)), raw.subarray(raw.lastIndexOf(0) + 1)];
        expect(r.user).toEqual(user);
        expect(r.password).toEqual(password);
        expect(user.length).toBeGreaterThan(0);
        expect(authzid.length === 0 || authzid.equals(user)).toBe(true);
        expect(Math.max(user.length, password.length)).toBeLessThanOrEqual(SASL_MAX_FIELD_BYTES);
        const sent = Buffer.from(user);
        raw.fill(0);
        expect(r.user).toEqual(sent); // copies, not views of the wiped input
      }),
    );
  }, FUZZ_TIMEOUT_MS);

  it('an exchange fed any lines never throws and ends with done or fail exactly once', async () => {
    const line = fc.oneof(
      fc.constantFrom('*', '=', '', 'AGFsaWNlAHB3', 'YWxpY2U=', 'c2VjcmV0', '!!!!', 'AGFsaWNl!AHB3'),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64')),
      fc.string({ unit: 'binary', maxLength: 20 }),
    );
    await fuzz(
      fc.property(fc.constantFrom('PLAIN', 'LOGIN', 'plain', 'CRAM-MD5', 'EXTERNAL', 'XOAUTH2', ''), fc.option(line), fc.array(line, { maxLength: 4 }), (mech, initial, rest) => {
        const { exchange, step } = SaslExchange.start(mech, initial, SASL_MECHANISMS);
        if (!SASL_MECHANISMS.includes(mech.toUpperCase() as never)) {
          expect(exchange).toBeNull();
          expect(step).toEqual({ kind: 'fail', reason: 'unknown-mechanism' });
          return;
        }
        let s = step;
        for (const l of rest) {
          if (s.kind !== 'challenge') break;
          s = exchange!.respond(l);
        }
        if (s.kind === 'done') {
          expect(s.credentials.user.length).toBeGreaterThan(0);
          expect(s.credentials.mechanism).toBe(mech.toUpperCase());
        }
      }),
    );
  }, FUZZ_TIMEOUT_MS);
});
