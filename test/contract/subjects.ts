// The contract for attempts that span subjects, with keys as limits/keys.ts builds them (an
// address's rules, a user's, the known-good pair and hint beside the user's): the Redis
// store splits them over Cluster slots, and must still answer as one store over every spec.
import { describe, expect, it } from 'vitest';
import { KeyBuilder } from '../../src/limits/keys.js';
import type { CounterSpec } from '../../src/stores/store.js';
import type { StoreHarness } from './harness.js';

const keys = new KeyBuilder('contract-subjects-secret-01');
let n = 0;

/** A fresh address and user, with a rule spec builder for them. */
function subjects() {
  const ip = `198.51.100.${++n % 250}`;
  const user = `user-${n}-${Math.random().toString(36).slice(2)}`;
  const rule = (key: 'ip' | 'user' | 'ip+user', over: Partial<CounterSpec> = {}): CounterSpec => ({
    key: keys.ruleKey({ name: `r${Math.random().toString(36).slice(2, 8)}`, key }, ip, user),
    kind: 'attempts',
    limit: 10,
    windowMs: 60_000,
    blockMs: null,
    ...over,
  });
  return { ip, user, rule, knownGoodKey: keys.knownGoodKey(`${ip}/32`, user), hintKey: keys.hintKey(user), successesKey: keys.successesKey(ip) };
}

export function subjectContract(make: () => Promise<StoreHarness>): void {
  describe('attempts over several subjects', () => {
    it('a refusal by one subject leaves nothing counted or reserved on the others', async () => {
      const { store } = await make();
      const s = subjects();
      const ipAttempts = s.rule('ip');
      const ipFailures = s.rule('ip', { kind: 'failures' });
      const pair = s.rule('ip+user', { kind: 'failures' });
      const user = s.rule('user', { limit: 1 });
      const all = [ipAttempts, ipFailures, pair, user];
      expect((await store.hit(all)).ok).toBe(true);
      await store.settle(all, { failed: false, reserved: true });
      expect(await store.hit(all)).toMatchObject({ ok: false, index: 3 });
      expect(await store.peek(ipAttempts.key)).toMatchObject({ count: 1, inflight: 0 });
      expect(await store.peek(ipFailures.key)).toMatchObject({ count: 0, inflight: 0 });
      expect(await store.peek(pair.key)).toMatchObject({ count: 0, inflight: 0 });
    });

    it('a known-good pair exempts the rules of every subject that allow it, atomically with the user\'s', async () => {
      const { store } = await make();
      const s = subjects();
      const ip = s.rule('ip', { kind: 'failures', limit: 1, blockMs: 600_000, knownGoodExempt: true });
      const user = s.rule('user', { knownGoodExempt: true });
      const pair = s.rule('ip+user', { kind: 'failures', limit: 3 });
      const all = [ip, pair, user];
      const opts = { knownGoodKey: s.knownGoodKey };
      expect((await store.hit(all, opts)).ok).toBe(true);
      await store.settle(all, { failed: true, reserved: true });
      // A stranger: the address's block refuses, and nothing stays counted on the user side.
      expect(await store.hit(all, opts)).toMatchObject({ ok: false, index: 0, blocked: true });
      expect(await store.peek(user.key)).toMatchObject({ count: 1 });
      expect(await store.peek(pair.key)).toMatchObject({ count: 1, inflight: 0 });
      // The pair logged in before: the block passes it, and what it counted stays.
      await store.settle([], { failed: false, reserved: false, knownGood: { key: s.knownGoodKey, ttlMs: 60_000 } });
      expect(await store.hit(all, opts)).toMatchObject({ ok: true, knownGood: true });
      expect(await store.peek(user.key)).toMatchObject({ count: 2 });
      expect(await store.peek(ip.key)).toMatchObject({ inflight: 1 });
      expect(await store.peek(pair.key)).toMatchObject({ inflight: 1 });
    });

    it('a matching password hint exempts across subjects; another password does not', async () => {
      const { store } = await make();
      const s = subjects();
      const ip = s.rule('ip', { kind: 'failures', limit: 1, blockMs: 600_000, hintExempt: true });
      const user = s.rule('user', { hintExempt: true });
      await store.hit([ip, user]);
      await store.settle([ip, user], { failed: true, reserved: true });
      await store.settle([], { failed: false, reserved: false, hint: { key: s.hintKey, value: 'c0ffee', ttlMs: 60_000 } });
      expect(await store.hit([ip, user], { hint: { key: s.hintKey, value: 'bad' } })).toMatchObject({ ok: false, index: 0 });
      expect(await store.hit([ip, user], { hint: { key: s.hintKey, value: 'c0ffee' } })).toMatchObject({ ok: true, hintMatch: true });
      expect(await store.peek(user.key)).toMatchObject({ count: 2 });
    });

    it('a check-only refusal reports the address\'s successes; a refusal counts nothing anywhere', async () => {
      const { store } = await make();
      const s = subjects();
      const ip = s.rule('ip', { limit: 1, blockMs: 600_000 });
      await store.hit([ip]);
      await store.settle([], { failed: false, reserved: false, success: { key: s.successesKey, member: 'u1', ttlMs: 60_000 } });
      expect(await store.hit([ip], { count: false, successesKey: s.successesKey })).toMatchObject({ ok: false, blocked: true, successes: 1 });
      expect(await store.hit([ip], { count: false })).toMatchObject({ ok: false, blocked: true });
      expect(await store.peek(ip.key)).toMatchObject({ count: 1 });
    });
  });
}
