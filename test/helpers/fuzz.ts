// Shared pieces of the property-based (fast-check) hostile-input suite: run counts, byte
// stream and chunking arbitraries, token soups per protocol, and a session-like driver that
// runs a protocol machine the way server/session.ts does. Pure: no sockets, no timers.
import fc from 'fast-check';
import type { Effect, LoginResult, MachineOptions, MailProtocol, ProtocolMachine } from '../../src/protocols/protocol.js';
import { b64 } from './codec.js';

/** Runs per property: short in CI, FUZZ_RUNS=20000 (npm run fuzz) for deeper searches. */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 300);
/** A fixed seed replays the batch fast-check reported as failing (FUZZ_SEED=…). */
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined;
/** Per-test timeout: generous when the runs are many (npm run fuzz). */
export const FUZZ_TIMEOUT_MS = Math.max(30_000, FUZZ_RUNS * 20);
/** Runs per batch: properties are synchronous, and a test worker that never yields for
 *  minutes loses its connection to the vitest runner. */
const BATCH = 500;

/** Checks a property for `runs` cases, in batches with a fresh seed each, yielding to the
 *  event loop between batches. A failure names its seed: FUZZ_SEED=<seed> replays it. */
export async function fuzz<Ts>(property: fc.IRawProperty<Ts>, runs = FUZZ_RUNS): Promise<void> {
  if (SEED !== undefined) return fc.assert(property, { numRuns: Math.min(runs, BATCH), seed: SEED });
  for (let done = 0; done < runs; done += BATCH) {
    fc.assert(property, { numRuns: Math.min(BATCH, runs - done), seed: (Date.now() ^ (done * 2654435761)) | 0 });
    await new Promise((r) => setImmediate(r));
  }
}

/** How a stream is cut into socket reads. */
export type Chunking = { kind: 'whole' } | { kind: 'bytes' } | { kind: 'sizes'; sizes: number[] };

export const chunkingArb: fc.Arbitrary<Chunking> = fc.oneof(
  fc.constant<Chunking>({ kind: 'whole' }),
  fc.constant<Chunking>({ kind: 'bytes' }),
  fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 12 }).map((sizes): Chunking => ({ kind: 'sizes', sizes })),
);

/** Cut `data` into chunks; chunk sizes cycle through the list. Never yields an empty chunk. */
export function chunk(data: Buffer, how: Chunking): Buffer[] {
  if (data.length === 0) return [];
  if (how.kind === 'whole') return [data];
  const out: Buffer[] = [];
  for (let i = 0, k = 0; i < data.length; k++) {
    const size = how.kind === 'bytes' ? 1 : how.sizes[k % how.sizes.length]!;
    out.push(data.subarray(i, i + size));
    i += size;
  }
  return out;
}

/** Bytes of any value, biased toward the ones parsers care about. */
const byteArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }) },
  { weight: 2, arbitrary: fc.constantFrom(0x00, 0x0a, 0x0d, 0x20, 0x22, 0x28, 0x29, 0x2a, 0x2b, 0x3d, 0x5c, 0x7b, 0x7d, 0x7f, 0x80, 0xc3, 0xff) },
);
export const rawBytesArb = (maxLength = 300) => fc.array(byteArb, { maxLength }).map((a) => Buffer.from(a));

/** Tokens every line protocol shares: line ends, SASL answers, odd bytes, long runs. */
const COMMON_TOKENS = [
  ' ', ' ', ' ', '\r\n', '\r\n', '\r\n', '\n', '\r', '\0', '*', '=', '+', '\x1b', '\xff', '\xc3\xa9',
  b64('\0alice\0secret'), b64('alice\0alice\0pw'), b64('bob\0alice\0pw'), b64('\0\0pw'), b64('a\0b'), b64('alice'), b64('secret'),
  b64('al\r\nice'), 'AGFsaWNl!AHB3', 'AGFsaWNlAHB3ZA=', 'PLAIN', 'LOGIN', 'CRAM-MD5', 'EXTERNAL', 'plain',
];

function soup(tokens: string[], longRuns: number[]): fc.Arbitrary<Buffer> {
  const token = fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...tokens) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 12 }) },
    { weight: 1, arbitrary: fc.array(byteArb, { maxLength: 8 }).map((a) => Buffer.from(a).toString('latin1')) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...longRuns), fc.constantFrom('x', 'A', ' ', '(')).map(([n, c]) => c.repeat(n)) },
  );
  return fc.array(token, { maxLength: 40 }).map((t) => Buffer.from(t.join(''), 'latin1'));
}

/** IMAP-shaped input: tags, verbs, literals of every size class, quoting, nesting. */
export const imapSoupArb = soup(
  [
    ...COMMON_TOKENS, 'a', 'b1', 'A001 ', 'x LOGIN ', 'y AUTHENTICATE ', 'LOGIN', 'AUTHENTICATE', 'STARTTLS', 'CAPABILITY',
    'ID', 'NOOP', 'LOGOUT', 'SELECT', 'FOOBAR', 'NIL', '(', ')', '((((((', '"', '"quoted"', '"a\\"b"', '\\',
    '{0}', '{3}', '{5}', '{3+}', '{5+}', '{10+}', '{8192}', '{8193}', '{8193+}', '{99999999999}', '{99999999999999999999+}', '{-1}', '{ 5}',
    'a LOGIN alice secret\r\n', 'a STARTTLS\r\n', 'a AUTHENTICATE PLAIN\r\n', 'a ID ("x-originating-ip" "6.6.6.6")\r\n', 'a03 FOOBAR {10+}\r\n',
  ],
  [8191, 8193, 9000, 12_289],
);

/** POP3-shaped input. */
export const pop3SoupArb = soup(
  [...COMMON_TOKENS, 'USER ', 'PASS ', 'AUTH ', 'AUTH', 'STLS', 'CAPA', 'QUIT', 'APOP ', 'STAT', 'USER alice\r\n', 'PASS secret\r\n', 'STLS\r\n', 'AUTH PLAIN\r\n', 'AUTH LOGIN\r\n'],
  [255, 511, 513, 12_289],
);

/** SMTP-shaped input. */
export const smtpSoupArb = soup(
  [
    ...COMMON_TOKENS, 'EHLO ', 'EHLO c\r\n', 'HELO c\r\n', 'STARTTLS', 'STARTTLS\r\n', 'AUTH ', 'AUTH PLAIN\r\n', 'AUTH LOGIN\r\n', 'MAIL FROM:<a@b>\r\n',
    'RCPT TO:<c@d>\r\n', 'DATA\r\n', 'BDAT 10 LAST\r\n', 'XCLIENT ADDR=6.6.6.6\r\n', 'XFORWARD ADDR=6.6.6.6\r\n', 'QUIT', 'NOOP', 'RSET', 'PROXY TCP4 6.6.6.6 1.2.3.4 1 2\r\n',
  ],
  [509, 511, 513, 12_321],
);

export const loginResultArb: fc.Arbitrary<LoginResult | { kind: 'ok' }> = fc.oneof(
  fc.constant({ kind: 'rejected' as const, reply: Buffer.from('x NO [AUTHENTICATIONFAILED] no\r\n') }),
  fc.constant({ kind: 'unavailable' as const }),
  fc.constant({ kind: 'invalid-user' as const }),
  fc.record({ kind: fc.constant('limited' as const), retryAfterSec: fc.integer({ min: 1, max: 3600 }) }),
  fc.constant({ kind: 'ok' as const }),
);

export const machineOptionsArb: fc.Arbitrary<Partial<MachineOptions>> = fc.record({
  tlsMode: fc.constantFrom('none', 'starttls', 'implicit'),
  requireTls: fc.boolean(),
  maxBadCommands: fc.integer({ min: 1, max: 12 }),
  maxAuthAttempts: fc.integer({ min: 1, max: 4 }),
}).map((o) => (o.tlsMode === 'none' ? { ...o, requireTls: false } : o));

export interface SessionRun {
  /** Effects with the chunking-dependent `discarded` count removed, sends as latin1 text. */
  effects: unknown[];
  /** Set when a login succeeded: the bytes the session would hand to the backend (what the
   *  machine kept raw plus everything the client sent after it). */
  handedOver: Buffer | null;
  /** The largest bufferedBytes seen after a step completed (reads, login results, TLS). */
  maxBuffered: number;
}

/**
 * Runs a machine the way the session does: the client's stream arrives as `segments` (the
 * plaintext, then what arrives after each STARTTLS handshake), each cut by `how`. A startTls
 * effect ends the current segment (the rest would be TLS records) and tlsStarted() begins the
 * next; every login effect gets the next result from `results` before more bytes are read
 * (the session pauses the socket during a login). Checks, on every step, that pushes after a
 * close do nothing and that buffered bytes stay within `bound`.
 */
export function runSession(
  protocol: MailProtocol,
  opts: MachineOptions,
  segments: Buffer[],
  how: Chunking,
  results: (LoginResult | { kind: 'ok' })[],
  bound: number,
): SessionRun {
  const m: ProtocolMachine = protocol.createMachine(opts);
  const effects: unknown[] = [];
  let closed = false;
  let tlsPending = false;
  let loginsPending = 0;
  let loginIndex = 0;
  let maxBuffered = 0;
  let handedOver: Buffer | null = null;

  const record = (list: Effect[]) => {
    list.forEach((e, i) => {
      // The session stops running a list at these (session.ts run()): nothing may follow.
      if (e.type !== 'send' && i !== list.length - 1) throw new Error(`${e.type} effect is not the last of its list`);
      if (closed) throw new Error(`effect after close: ${JSON.stringify(e)}`);
      if (e.type === 'close') closed = true;
      if (e.type === 'startTls') tlsPending = true;
      if (e.type === 'login') loginsPending++;
      effects.push(e.type === 'startTls' ? { type: 'startTls' } : e.type === 'send' ? { type: 'send', data: Buffer.from(e.data).toString('latin1') } : e);
    });
  };
  const check = () => {
    maxBuffered = Math.max(maxBuffered, m.bufferedBytes);
    if (!closed && m.bufferedBytes > bound) throw new Error(`buffered ${m.bufferedBytes} bytes, bound ${bound}`);
  };

  record(m.start());
  for (let s = 0; s < segments.length && !closed && handedOver === null; s++) {
    if (tlsPending) {
      tlsPending = false;
      record(m.tlsStarted());
    }
    const chunks = chunk(segments[s]!, how);
    for (let c = 0; c < chunks.length && handedOver === null; c++) {
      if (tlsPending) break; // the rest of this segment is the handshake's, not plaintext
      const before = m.bufferedBytes;
      const out = m.push(chunks[c]!);
      if (closed) {
        if (out.length) throw new Error('a closed machine answered');
        if (m.bufferedBytes > before) throw new Error('a closed machine buffered more input');
        continue;
      }
      record(out);
      while (loginsPending > 0 && !closed && handedOver === null) {
        loginsPending--;
        const r = results[loginIndex++ % Math.max(1, results.length)] ?? { kind: 'unavailable' as const };
        if (r.kind === 'ok') {
          const rest = [...chunks.slice(c + 1), ...segments.slice(s + 1)];
          handedOver = Buffer.concat([m.takeBuffered(), ...rest]);
          if (m.bufferedBytes !== 0) throw new Error('takeBuffered left bytes behind');
          break;
        }
        record(m.loginResult(r));
      }
      check();
    }
  }
  return { effects, handedOver, maxBuffered };
}
