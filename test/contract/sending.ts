// The contract for sending counts and known recipients (limits/sending.ts), run against every
// store with keys as limits/keys.ts builds them (one user's slot in a Redis Cluster). The
// counts' window is the store's TTL (advance moves it); a recipient's last send is the
// caller's atMs.
import { describe, expect, it } from 'vitest';
import { KeyBuilder } from '../../src/limits/keys.js';
import type { LimitStore, SendingBounds } from '../../src/stores/store.js';
import type { StoreHarness } from './harness.js';

const keys = new KeyBuilder('contract-sending-secret-01');
const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
type Ops = Required<Pick<LimitStore, 'sendingPeek' | 'sendingAdd' | 'sendingReset'>>;

/** A fresh account: its two keys, and the calls on them. */
function account(s: LimitStore) {
  const user = `user-${Math.random().toString(36).slice(2)}`;
  const ops = s as Ops;
  const c = keys.sendingKey(user);
  const k = keys.knownRecipientsKey(user);
  const p = (addr: string) => keys.recipientPrint(user, addr);
  const bounds = (over: Partial<SendingBounds> = {}): SendingBounds => ({ atMs: T0, windowMs: DAY, knownTtlMs: 30 * DAY, knownCap: 100, ...over });
  return {
    p,
    add: (prints: string[], over: Partial<SendingBounds> = {}) => ops.sendingAdd(c, k, prints, bounds(over)),
    peek: (prints: string[], atMs = T0, knownTtlMs = 30 * DAY) => ops.sendingPeek(c, k, prints, { atMs, knownTtlMs }),
    reset: (known: boolean) => ops.sendingReset(c, known ? k : undefined),
  };
}

export function sendingContract(make: () => Promise<StoreHarness>): void {
  describe('sending counts', () => {
    it('nothing counted reads zero with no window, and nothing known', async () => {
      const a = account((await make()).store);
      expect(await a.peek([a.p('x@example.org')])).toEqual({ messages: 0, recipients: 0, newRecipients: 0, ttlMs: 0, known: [false] });
    });

    it('counts messages, recipients and distinct first-time recipients; a known one is not new', async () => {
      const a = account((await make()).store);
      const [x, y, z] = [a.p('x@example.org'), a.p('y@example.org'), a.p('z@example.org')];
      expect(await a.add([x, y, x])).toMatchObject({ messages: 1, recipients: 3, newRecipients: 2, added: 2 });
      const second = await a.add([y, z], { atMs: T0 + 1_000 });
      expect(second).toMatchObject({ messages: 2, recipients: 5, newRecipients: 3, added: 1 });
      expect(second.ttlMs).toBeGreaterThan(DAY - 60_000);
      expect(second.ttlMs).toBeLessThanOrEqual(DAY);
      const peek = await a.peek([x, z, a.p('w@example.org')], T0 + 2_000);
      expect(peek).toMatchObject({ messages: 2, recipients: 5, newRecipients: 3, known: [true, true, false] });
    });

    it('a message without recipients counts as a message', async () => {
      const a = account((await make()).store);
      expect(await a.add([])).toMatchObject({ messages: 1, recipients: 0, newRecipients: 0, added: 0 });
    });

    it('the window is fixed from the first count: later counts do not extend it, and it starts again after', async () => {
      const { store, advance } = await make();
      const a = account(store);
      const x = a.p('x@example.org');
      await a.add([x], { windowMs: 10_000 });
      await advance(6_000);
      const later = await a.add([a.p('y@example.org')], { windowMs: 10_000, atMs: T0 + 6_000 });
      expect(later.messages).toBe(2);
      expect(later.ttlMs).toBeLessThanOrEqual(4_000);
      await advance(4_001);
      expect(await a.peek([x], T0 + 10_001)).toEqual({ messages: 0, recipients: 0, newRecipients: 0, ttlMs: 0, known: [true] });
      // The recipients outlive the window: x is known in the next one.
      expect(await a.add([x], { windowMs: 10_000, atMs: T0 + 10_001 })).toMatchObject({ messages: 1, recipients: 1, newRecipients: 0 });
    });

    it('a recipient not sent to within knownTtlMs is first-time again', async () => {
      const a = account((await make()).store);
      const [x, y] = [a.p('x@example.org'), a.p('y@example.org')];
      await a.add([x, y], { knownTtlMs: 10 * DAY });
      await a.add([y], { knownTtlMs: 10 * DAY, atMs: T0 + 5 * DAY });
      expect((await a.peek([x, y], T0 + 10 * DAY + 1, 10 * DAY)).known).toEqual([false, true]);
      expect(await a.add([x, y], { knownTtlMs: 10 * DAY, atMs: T0 + 10 * DAY + 1 })).toMatchObject({ added: 1 });
    });

    it('keeps at most knownCap recipients: the one sent to least lately goes', async () => {
      const a = account((await make()).store);
      const [x, y, z, w] = ['x', 'y', 'z', 'w'].map((l) => a.p(`${l}@example.org`)) as [string, string, string, string];
      await a.add([x], { knownCap: 3, atMs: T0 });
      await a.add([y], { knownCap: 3, atMs: T0 + 1 });
      await a.add([z], { knownCap: 3, atMs: T0 + 2 });
      await a.add([x], { knownCap: 3, atMs: T0 + 3 });
      await a.add([w], { knownCap: 3, atMs: T0 + 4 });
      expect((await a.peek([x, y, z, w], T0 + 5)).known).toEqual([true, false, true, true]);
    });

    it('the known set expires with its TTL from the last send', async () => {
      const { store, advance } = await make();
      const a = account(store);
      const x = a.p('x@example.org');
      await a.add([x], { knownTtlMs: 20_000, windowMs: 5_000 });
      await advance(20_001);
      expect((await a.peek([x], T0)).known).toEqual([false]);
    });

    it('reset clears the counts, and the known set only when asked', async () => {
      const a = account((await make()).store);
      const x = a.p('x@example.org');
      await a.add([x]);
      await a.reset(false);
      expect(await a.peek([x])).toEqual({ messages: 0, recipients: 0, newRecipients: 0, ttlMs: 0, known: [true] });
      await a.add([x]);
      await a.reset(true);
      expect(await a.peek([x])).toEqual({ messages: 0, recipients: 0, newRecipients: 0, ttlMs: 0, known: [false] });
    });

    it('parallel adds are atomic: every message counted, each recipient first-time once', async () => {
      const a = account((await make()).store);
      const shared = a.p('shared@example.org');
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => a.add([shared, a.p(`r${i}@example.org`)], { atMs: T0 + i })));
      expect(results.reduce((n, r) => n + r.added, 0)).toBe(21);
      expect(await a.peek([])).toMatchObject({ messages: 20, recipients: 40, newRecipients: 21 });
    });

    it('accounts are apart', async () => {
      const s = (await make()).store;
      const a = account(s);
      const b = account(s);
      await a.add([a.p('x@example.org')]);
      expect(await b.peek([b.p('x@example.org')])).toEqual({ messages: 0, recipients: 0, newRecipients: 0, ttlMs: 0, known: [false] });
    });
  });
}
