// Property-based fuzzing of the per-turn budget (issue 15) of the three pre-auth machines: any
// stream, any chunking, any budget, each call's batches drained with resume() as the session
// does, gives exactly the effects and hand-over of the unbounded machine: nothing lost,
// repeated or reordered wherever a batch stops (before a login, STARTTLS, a close, a SASL
// answer). FUZZ_RUNS sets the depth.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IMAP_MAX_LINE_BYTES, IMAP_MAX_LITERAL_BYTES, SASL_MAX_TOKEN_BYTES } from '../../src/bounds.js';
import { imap } from '../../src/protocols/imap/index.js';
import { pop3 } from '../../src/protocols/pop3/index.js';
import type { Effect, GoodbyeReason, LoginResult, MachineOptions, MailProtocol, ProtocolMachine } from '../../src/protocols/protocol.js';
import { smtp } from '../../src/protocols/smtp/index.js';
import { DEFAULT_OPTIONS } from '../helpers/machine-driver.js';
import { chunkingArb, FUZZ_TIMEOUT_MS, fuzz, imapSoupArb, loginResultArb, machineOptionsArb, pop3SoupArb, rawBytesArb, runSession, smtpSoupArb } from '../helpers/fuzz.js';

/** A machine with a budget of `events` a call, each call's batches drained at once. */
class Drained implements ProtocolMachine {
  constructor(private readonly m: ProtocolMachine) {}
  private drain(first: Effect[]): Effect[] {
    const out = [...first];
    while (this.m.pending) out.push(...this.m.resume());
    return out;
  }
  start = () => this.m.start();
  push = (chunk: Buffer) => this.drain(this.m.push(chunk));
  limitTurns = (events: number) => this.m.limitTurns(events);
  get pending() {
    return this.m.pending;
  }
  resume = () => this.drain([]);
  tlsStarted = () => this.drain(this.m.tlsStarted());
  loginResult = (r: LoginResult) => this.drain(this.m.loginResult(r));
  loginChallenge = (text: string) => this.drain(this.m.loginChallenge(text));
  takeBuffered = () => this.m.takeBuffered();
  goodbye = (reason: GoodbyeReason, retryAfterSec?: number) => this.m.goodbye(reason, retryAfterSec);
  get bufferedBytes() {
    return this.m.bufferedBytes;
  }
}

function budgeted(protocol: MailProtocol, events: number): MailProtocol {
  return {
    name: protocol.name,
    createMachine(opts: MachineOptions) {
      const m = protocol.createMachine(opts);
      m.limitTurns(events);
      return new Drained(m);
    },
  };
}

const TARGETS: Record<string, { protocol: MailProtocol; soup: fc.Arbitrary<Buffer>; bound: number }> = {
  imap: { protocol: imap, soup: imapSoupArb, bound: Math.max(IMAP_MAX_LINE_BYTES, IMAP_MAX_LITERAL_BYTES, SASL_MAX_TOKEN_BYTES + 1) },
  pop3: { protocol: pop3, soup: pop3SoupArb, bound: SASL_MAX_TOKEN_BYTES + 1 },
  smtp: { protocol: smtp, soup: smtpSoupArb, bound: SASL_MAX_TOKEN_BYTES + 32 + 1 },
};

for (const [name, t] of Object.entries(TARGETS)) {
  describe(`fuzz: ${name} machine with a turn budget`, () => {
    it('any stream, chunking and budget: the batches add up to what the unbounded machine does', async () => {
      const segments = fc.array(fc.oneof({ weight: 3, arbitrary: t.soup }, { weight: 1, arbitrary: rawBytesArb() }), { minLength: 1, maxLength: 3 });
      await fuzz(
        fc.property(machineOptionsArb, segments, fc.array(loginResultArb, { maxLength: 4 }), chunkingArb, fc.integer({ min: 1, max: 4 }), (o, segs, results, how, events) => {
          const opts = { ...DEFAULT_OPTIONS, ...o };
          const unbounded = runSession(t.protocol, opts, segs, how, results, t.bound);
          const bounded = runSession(budgeted(t.protocol, events), opts, segs, how, results, t.bound);
          expect(bounded.effects).toEqual(unbounded.effects);
          expect(bounded.handedOver).toEqual(unbounded.handedOver);
        }),
      );
    }, FUZZ_TIMEOUT_MS);
  });
}
