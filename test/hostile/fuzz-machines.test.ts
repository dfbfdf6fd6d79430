// Property-based fuzzing of the three pre-auth protocol machines (created through their
// protocol descriptors, run as server/session.ts runs them): arbitrary and protocol-shaped
// byte streams, cut into arbitrary reads, never throw, never buffer past the bounds of
// src/bounds.ts, answer the same however they are cut, never reflect client bytes,
// and never produce a login before TLS when TLS is required. FUZZ_RUNS sets the depth.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IMAP_MAX_LINE_BYTES, IMAP_MAX_LITERAL_BYTES, SASL_MAX_TOKEN_BYTES } from '../../src/bounds.js';
import { imap } from '../../src/protocols/imap/index.js';
import { pop3 } from '../../src/protocols/pop3/index.js';
import type { MailProtocol } from '../../src/protocols/protocol.js';
import { smtp } from '../../src/protocols/smtp/index.js';
import { DEFAULT_OPTIONS } from '../helpers/machine-driver.js';
import {
  chunkingArb,
  FUZZ_TIMEOUT_MS,
  fuzz,
  FUZZ_RUNS,
  imapSoupArb,
  loginResultArb,
  machineOptionsArb,
  pop3SoupArb,
  rawBytesArb,
  runSession,
  smtpSoupArb,
} from '../helpers/fuzz.js';

interface Target {
  protocol: MailProtocol;
  soup: fc.Arbitrary<Buffer>;
  /** The most a machine may hold between reads (see each reader's bound). */
  bound: number;
}

const TARGETS: Record<string, Target> = {
  // A line without LF up to the line bound, a literal still arriving (at most its bound), or
  // an answer to a SASL challenge up to the SASL bound plus a final CR.
  imap: { protocol: imap, soup: imapSoupArb, bound: Math.max(IMAP_MAX_LINE_BYTES, IMAP_MAX_LITERAL_BYTES, SASL_MAX_TOKEN_BYTES + 1) },
  // LineReader keeps at most its limit plus a trailing CR; SASL responses raise the limit.
  pop3: { protocol: pop3, soup: pop3SoupArb, bound: SASL_MAX_TOKEN_BYTES + 1 },
  // SMTP reads every line up to the AUTH bound (SASL token + "AUTH PLAIN ") plus a CR.
  smtp: { protocol: smtp, soup: smtpSoupArb, bound: SASL_MAX_TOKEN_BYTES + 32 + 1 },
};

/** Machine replies are our own canned text: printable ASCII lines (the backend's rejection,
 *  forwarded as is, is ASCII in these runs too). Client bytes are never reflected raw. */
const CANNED = /^(?:[\x20-\x7e]*\r\n)+$/;

function streamArb(soup: fc.Arbitrary<Buffer>) {
  const segment = fc.oneof({ weight: 3, arbitrary: soup }, { weight: 1, arbitrary: rawBytesArb() });
  return fc.array(segment, { minLength: 1, maxLength: 3 });
}

for (const [name, t] of Object.entries(TARGETS)) {
  describe(`fuzz: ${name} machine`, () => {
    it('any stream, any chunking: no throw, bounded buffers, the same effects as one read', async () => {
      await fuzz(
        fc.property(machineOptionsArb, streamArb(t.soup), fc.array(loginResultArb, { maxLength: 4 }), chunkingArb, (o, segments, results, how) => {
          const opts = { ...DEFAULT_OPTIONS, ...o };
          const whole = runSession(t.protocol, opts, segments, { kind: 'whole' }, results, t.bound);
          const cut = runSession(t.protocol, opts, segments, how, results, t.bound);
          expect(cut.effects).toEqual(whole.effects);
          expect(cut.handedOver).toEqual(whole.handedOver);
        }),
      );
    }, FUZZ_TIMEOUT_MS);

    it('replies are canned ASCII lines; no login before TLS when TLS is required', async () => {
      await fuzz(
        fc.property(machineOptionsArb, streamArb(t.soup), fc.array(loginResultArb, { maxLength: 4 }), chunkingArb, (o, segments, results, how) => {
          const opts = { ...DEFAULT_OPTIONS, ...o };
          const { effects } = runSession(t.protocol, opts, segments, how, results, t.bound);
          let secure = opts.tlsMode === 'implicit';
          for (const e of effects as { type: string; data?: string }[]) {
            if (e.type === 'send') expect(e.data).toMatch(CANNED);
            if (e.type === 'startTls') secure = true;
            if (e.type === 'login' && opts.requireTls) expect(secure).toBe(true);
          }
        }),
      );
    }, FUZZ_TIMEOUT_MS);

    it('pure noise in 64 KiB reads (the size Node delivers) stays bounded', async () => {
      await fuzz(
        fc.property(machineOptionsArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 255 }), (o, reads, fill) => {
          const opts = { ...DEFAULT_OPTIONS, ...o };
          const noise = Buffer.alloc(64 * 1024 * reads, fill);
          runSession(t.protocol, opts, [noise], { kind: 'sizes', sizes: [64 * 1024] }, [], t.bound);
        }),
        Math.min(50, FUZZ_RUNS),
      );
    }, FUZZ_TIMEOUT_MS);
  });
}
