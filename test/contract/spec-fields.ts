// One contract test per CounterSpec field: the same scenario, run with the field one way and
// the other, ends differently, and the same way in every store. A field one store ignores or
// reads otherwise (the Redis wire carries them all) fails here. A field without a case does
// not compile.
import { describe, expect, it } from 'vitest';
import type { CounterSpec, HitResult } from '../../src/stores/store.js';
import { spec, type StoreHarness } from './harness.js';

interface FieldCase {
  /** What the field changes (the test's name). */
  changes: string;
  /** The spec with the field one way, and the other way. */
  a: Partial<CounterSpec>;
  b: Partial<CounterSpec>;
  /** The scenario, on a fresh store; returns what the field changes. */
  run(h: StoreHarness, s: CounterSpec): Promise<unknown>;
  /** What it returns with a, and with b. */
  expected: [unknown, unknown];
}

/** Whole seconds, so Redis (whose TTLs run on its own clock meanwhile) reads the same. */
const seconds = (r: HitResult) => (r.ok ? 0 : Math.round(r.retryAfterMs / 1000));

/** Blocks `rounds` times in a row (limit 1: the first hit blocks), each after the last ended;
 *  returns each block's length in seconds. */
async function blockLengths({ store, advance }: StoreHarness, s: CounterSpec, rounds = 2): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await store.hit([s]);
    out.push(seconds(await store.hit([s])));
    await advance(out.at(-1)! * 1000 + 1);
  }
  return out;
}

const growing = { limit: 1, windowMs: 1_000, blockMs: 60_000, blockGrowth: 2, blockMemoryMs: 86_400_000 };

const CASES: Record<Exclude<keyof CounterSpec, 'key'>, FieldCase> = {
  kind: {
    changes: 'attempts count at hit; failures only when settled as failed',
    a: { kind: 'attempts', limit: 1 },
    b: { kind: 'failures', limit: 1 },
    async run({ store }, s) {
      await store.hit([s]);
      await store.settle([s], { failed: false, reserved: true });
      return [(await store.hit([s])).ok, (await store.peek(s.key)).count];
    },
    expected: [
      [false, 1],
      [true, 0],
    ],
  },
  limit: {
    changes: 'how many pass',
    a: { limit: 2 },
    b: { limit: 3 },
    async run({ store }, s) {
      const oks: boolean[] = [];
      for (let i = 0; i < 3; i++) oks.push((await store.hit([s])).ok);
      return oks;
    },
    expected: [
      [true, true, false],
      [true, true, true],
    ],
  },
  windowMs: {
    changes: 'how long a count lasts',
    a: { limit: 1, windowMs: 10_000 },
    b: { limit: 1, windowMs: 100_000 },
    async run({ store, advance }, s) {
      await store.hit([s]);
      await advance(10_001);
      return (await store.hit([s])).ok;
    },
    expected: [true, false],
  },
  blockMs: {
    changes: 'a block at the limit, for that long, outlasting the window',
    a: { limit: 1, windowMs: 10_000, blockMs: null },
    b: { limit: 1, windowMs: 10_000, blockMs: 100_000 },
    async run({ store, advance }, s) {
      const r = await store.hit([s]).then(() => store.hit([s]));
      await advance(10_001);
      return [seconds(r), !r.ok && r.blocked, (await store.hit([s])).ok];
    },
    expected: [
      [10, false, true],
      [100, true, false],
    ],
  },
  knownGoodExempt: {
    changes: 'a known-good pair passes a refusing rule',
    a: { kind: 'failures', limit: 1, knownGoodExempt: true },
    b: { kind: 'failures', limit: 1 },
    async run({ store }, s) {
      const knownGoodKey = `kg-${s.key}`;
      await store.settle([], { failed: false, reserved: false, knownGood: { key: knownGoodKey, ttlMs: 60_000 } });
      await store.hit([s], { knownGoodKey });
      await store.settle([s], { failed: true, reserved: true });
      return (await store.hit([s], { knownGoodKey })).ok;
    },
    expected: [true, false],
  },
  hintExempt: {
    changes: "a password matching the account's hint passes a refusing rule; another does not",
    a: { kind: 'failures', limit: 1, hintExempt: true },
    b: { kind: 'failures', limit: 1 },
    async run({ store }, s) {
      const hintKey = `h-${s.key}`;
      await store.settle([], { failed: false, reserved: false, hint: { key: hintKey, value: 'a1b2c3', ttlMs: 60_000 } });
      await store.hit([s]);
      await store.settle([s], { failed: true, reserved: true });
      const right = await store.hit([s], { hint: { key: hintKey, value: 'a1b2c3' } });
      const wrong = await store.hit([s], { hint: { key: hintKey, value: 'ffffff' } });
      return [right.ok, wrong.ok, right.ok && right.hintMatch];
    },
    expected: [
      [true, false, true],
      [false, false, false],
    ],
  },
  resetOnSuccess: {
    changes: 'a success clears the count and the block',
    a: { kind: 'failures', limit: 2, blockMs: 60_000, resetOnSuccess: true },
    b: { kind: 'failures', limit: 2, blockMs: 60_000 },
    async run({ store }, s) {
      for (let i = 0; i < 2; i++) {
        await store.hit([s]);
        await store.settle([s], { failed: true, reserved: true });
      }
      const blocked = (await store.hit([s])).ok;
      // A success from elsewhere that shares the key (an exempt pair), settled with the spec.
      const counts = await store.settle([s], { failed: false, reserved: false });
      return [blocked, counts[0], (await store.hit([s])).ok];
    },
    expected: [
      [false, 0, true],
      [false, 2, false],
    ],
  },
  unreserved: {
    changes: 'no reservation for attempts in flight, so parallel attempts may pass the limit',
    a: { kind: 'failures', limit: 2, distinct: true, unreserved: true },
    b: { kind: 'failures', limit: 2, distinct: true },
    async run({ store }, s) {
      const results = await Promise.all(Array.from({ length: 6 }, () => store.hit([s])));
      return [results.filter((r) => r.ok).length, (await store.peek(s.key)).inflight];
    },
    expected: [
      [6, 0],
      [2, 2],
    ],
  },
  distinct: {
    changes: 'members count, not events (attempts in flight are reserved either way)',
    a: { kind: 'failures', limit: 2, distinct: true },
    b: { kind: 'failures', limit: 2 },
    async run({ store }, s) {
      const inflight: number[] = [];
      for (let i = 0; i < 2; i++) {
        await store.hit([s]);
        inflight.push((await store.peek(s.key)).inflight);
        await store.settle([s], { failed: true, reserved: true, members: ['same-member'] });
      }
      return [inflight, (await store.peek(s.key)).count, (await store.hit([s])).ok];
    },
    expected: [
      [[1, 1], 1, true],
      [[1, 1], 2, false],
    ],
  },
  dedupe: {
    changes: 'the same fingerprint counts once',
    a: { kind: 'failures', limit: 2, dedupe: true },
    b: { kind: 'failures', limit: 2 },
    async run({ store }, s) {
      for (let i = 0; i < 2; i++) {
        await store.hit([s]);
        await store.settle([s], { failed: true, reserved: true, fingerprint: 'same-password' });
      }
      return [(await store.peek(s.key)).count, (await store.hit([s])).ok];
    },
    expected: [
      [1, true],
      [2, false],
    ],
  },
  blockGrowth: {
    changes: 'a repeated block is longer',
    a: growing,
    b: { ...growing, blockGrowth: undefined },
    run: (h, s) => blockLengths(h, s),
    expected: [
      [60, 120],
      [60, 60],
    ],
  },
  blockMemoryMs: {
    changes: 'a block repeated after the memory is the first again',
    a: { ...growing, blockMemoryMs: 30_000 },
    b: growing,
    run: (h, s) => blockLengths(h, s),
    expected: [
      [60, 60],
      [60, 120],
    ],
  },
  blockMaxMs: {
    changes: 'a grown block is capped',
    a: { ...growing, blockMaxMs: 90_000 },
    b: growing,
    run: (h, s) => blockLengths(h, s),
    expected: [
      [60, 90],
      [60, 120],
    ],
  },
};

export function specFieldContract(make: () => Promise<StoreHarness>): void {
  describe('each CounterSpec field changes behaviour', () => {
    for (const [field, c] of Object.entries(CASES)) {
      it(`${field}: ${c.changes}`, async () => {
        expect(c.expected[0]).not.toEqual(c.expected[1]);
        const got = [await c.run(await make(), spec(c.a)), await c.run(await make(), spec(c.b))];
        expect(got).toEqual(c.expected);
      });
    }
  });
}
