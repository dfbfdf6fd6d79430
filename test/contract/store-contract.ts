// The behaviour every LimitStore must have. Run against each implementation so they
// cannot drift (memory now, Redis with the Redis store).
import { describe, expect, it } from 'vitest';
import { spec, type StoreHarness } from './harness.js';
import { specFieldContract } from './spec-fields.js';
import { subjectContract } from './subjects.js';
import { recordContract } from './records.js';
import { sendingContract } from './sending.js';

export function storeContract(name: string, make: () => Promise<StoreHarness>): void {
  describe(`LimitStore contract: ${name}`, () => {
    it('counts attempts up to the limit, then refuses until the window ends', async () => {
      const { store, advance } = await make();
      const s = spec();
      for (let i = 0; i < 3; i++) expect((await store.hit([s])).ok).toBe(true);
      const r = await store.hit([s]);
      expect(r).toMatchObject({ ok: false, index: 0, count: 3, blocked: false });
      if (!r.ok) expect(r.retryAfterMs).toBeGreaterThan(50_000);
      expect((await store.peek(s.key)).count).toBe(3);
      await advance(60_001);
      expect((await store.hit([s])).ok).toBe(true);
      expect((await store.peek(s.key)).count).toBe(1);
    });

    it('a refused hit counts nothing on any spec (all or nothing)', async () => {
      const { store } = await make();
      const a = spec({ limit: 10 });
      const b = spec({ limit: 1 });
      expect((await store.hit([a, b])).ok).toBe(true);
      const r = await store.hit([a, b]);
      expect(r).toMatchObject({ ok: false, index: 1 });
      expect((await store.peek(a.key)).count).toBe(1);
    });

    it('names the first refusing spec in order', async () => {
      const { store } = await make();
      const a = spec({ limit: 1 });
      const b = spec({ limit: 1 });
      await store.hit([a, b]);
      expect(await store.hit([a, b])).toMatchObject({ ok: false, index: 0 });
    });

    it('an attempts block starts when the limit is reached and outlasts the window', async () => {
      const { store, advance } = await make();
      const s = spec({ limit: 2, windowMs: 10_000, blockMs: 100_000 });
      await store.hit([s]);
      await store.hit([s]);
      await advance(20_000);
      const r = await store.hit([s]);
      expect(r).toMatchObject({ ok: false, blocked: true });
      if (!r.ok) expect(r.retryAfterMs).toBeLessThanOrEqual(80_000);
      await advance(80_001);
      expect((await store.hit([s])).ok).toBe(true);
    });

    it('failures are reserved at hit and counted only when settled as failed', async () => {
      const { store } = await make();
      const s = spec({ kind: 'failures', limit: 2 });
      expect((await store.hit([s])).ok).toBe(true);
      expect((await store.peek(s.key)).inflight).toBe(1);
      await store.settle([s], { failed: false, reserved: true });
      expect(await store.peek(s.key)).toMatchObject({ count: 0, inflight: 0 });
      for (let i = 0; i < 2; i++) {
        expect((await store.hit([s])).ok).toBe(true);
        await store.settle([s], { failed: true, reserved: true });
      }
      expect((await store.peek(s.key)).count).toBe(2);
      expect(await store.hit([s])).toMatchObject({ ok: false, count: 2 });
    });

    it('in-flight reservations stop parallel attempts overshooting a distinct limit too', async () => {
      const { store } = await make();
      const d = spec({ limit: 5, kind: 'failures', distinct: true });
      const results = await Promise.all(Array.from({ length: 40 }, () => store.hit([d])));
      expect(results.filter((r) => r.ok)).toHaveLength(5);
    });

    it('in-flight reservations stop parallel attempts overshooting a failures limit', async () => {
      const { store } = await make();
      const s = spec({ kind: 'failures', limit: 5 });
      const results = await Promise.all(Array.from({ length: 50 }, () => store.hit([s])));
      expect(results.filter((r) => r.ok)).toHaveLength(5);
      await Promise.all(Array.from({ length: 5 }, () => store.settle([s], { failed: true, reserved: true })));
      expect(await store.peek(s.key)).toMatchObject({ count: 5, inflight: 0 });
    });

    it('exactly limit of many parallel attempts pass', async () => {
      const { store } = await make();
      const s = spec({ limit: 5 });
      const results = await Promise.all(Array.from({ length: 50 }, () => store.hit([s])));
      expect(results.filter((r) => r.ok)).toHaveLength(5);
    });

    it('a failures block starts when the limit is reached', async () => {
      const { store, advance } = await make();
      const s = spec({ kind: 'failures', limit: 1, windowMs: 1_000, blockMs: 30_000 });
      await store.hit([s]);
      await store.settle([s], { failed: true, reserved: true });
      await advance(5_000);
      expect(await store.hit([s])).toMatchObject({ ok: false, blocked: true });
      expect((await store.peek(s.key)).blockedMs).toBeGreaterThan(20_000);
    });

    it('reset clears counter, reservations and block', async () => {
      const { store } = await make();
      const s = spec({ limit: 1, blockMs: 60_000 });
      await store.hit([s]);
      expect((await store.hit([s])).ok).toBe(false);
      await store.reset(s.key);
      expect(await store.peek(s.key)).toMatchObject({ count: 0, inflight: 0, blockedMs: 0 });
      expect((await store.hit([s])).ok).toBe(true);
    });

    it('lists current blocks with their count and remaining time; reset lifts them', async () => {
      const { store, advance } = await make();
      const s = spec({ limit: 2, blockMs: 600_000 });
      const other = spec({ limit: 5, blockMs: 600_000 });
      await store.hit([s, other]);
      await store.hit([s, other]);
      const blocks = (await store.blocks()).filter((b) => b.key === s.key || b.key === other.key);
      expect(blocks).toHaveLength(1);
      expect(blocks[0]).toMatchObject({ key: s.key, count: 2 });
      expect(blocks[0]!.remainingMs).toBeGreaterThan(590_000);
      expect(blocks[0]!.sinceMs).toBeGreaterThan(0);
      await advance(600_001);
      expect((await store.blocks()).some((b) => b.key === s.key)).toBe(false);
      await store.hit([s]);
      await store.hit([s]);
      expect((await store.blocks()).some((b) => b.key === s.key)).toBe(true);
      await store.reset(s.key);
      expect((await store.blocks()).some((b) => b.key === s.key)).toBe(false);
      expect((await store.hit([s])).ok).toBe(true);
    });

    it('a block by hand refuses whatever the count, lists, lasts its time, and reset lifts it', async () => {
      const { store, advance } = await make();
      const s = spec({ limit: 100 });
      await store.hit([s]);
      await store.block(s.key, 120_000);
      const refused = await store.hit([s]);
      expect(refused).toMatchObject({ ok: false, index: 0, blocked: true });
      expect(!refused.ok && refused.retryAfterMs).toBeGreaterThan(110_000);
      expect(await store.blocks()).toContainEqual(expect.objectContaining({ key: s.key, count: 1 }));
      await advance(120_001);
      expect((await store.hit([s])).ok).toBe(true);
      await store.block(s.key, 60_000);
      await store.reset(s.key);
      expect((await store.hit([s])).ok).toBe(true);
      expect((await store.blocks()).some((b) => b.key === s.key)).toBe(false);
    });

    it('known-good: exempt specs do not refuse when the pair exists; others still do; it expires', async () => {
      const { store, advance } = await make();
      const user = spec({ limit: 1, kind: 'failures', knownGoodExempt: true });
      const ip = spec({ limit: 1, kind: 'failures' });
      const kg = `kg-${user.key}`;
      expect((await store.hit([user], { knownGoodKey: kg })).ok).toBe(true);
      await store.settle([user], { failed: true, reserved: true });
      expect((await store.hit([user], { knownGoodKey: kg })).ok).toBe(false);
      await store.settle([], { failed: false, reserved: false, knownGood: { key: kg, ttlMs: 10_000 } });
      expect(await store.hit([user], { knownGoodKey: kg })).toMatchObject({ ok: true, knownGood: true });
      await store.settle([user], { failed: false, reserved: true });
      // IP rules still apply to a known-good pair.
      await store.hit([ip]);
      await store.settle([ip], { failed: true, reserved: true });
      expect((await store.hit([ip, user], { knownGoodKey: kg })).ok).toBe(false);
      await advance(10_001);
      expect((await store.hit([user], { knownGoodKey: kg })).ok).toBe(false);
    });

    it('count: false checks without counting or reserving', async () => {
      const { store } = await make();
      const a = spec({ limit: 1 });
      const f = spec({ limit: 1, kind: 'failures' });
      expect((await store.hit([a, f], { count: false })).ok).toBe(true);
      expect((await store.peek(a.key)).count).toBe(0);
      expect((await store.peek(f.key)).inflight).toBe(0);
      await store.hit([a]);
      expect((await store.hit([a], { count: false })).ok).toBe(false);
    });

    it('dedupe: the same fingerprint counts once per window; a different one counts', async () => {
      const { store, advance } = await make();
      const f = spec({ limit: 3, kind: 'failures', dedupe: true });
      for (let i = 0; i < 10; i++) {
        expect((await store.hit([f])).ok).toBe(true);
        expect(await store.settle([f], { failed: true, reserved: true, fingerprint: 'same' })).toEqual([1]);
      }
      await store.hit([f]);
      expect(await store.settle([f], { failed: true, reserved: true, fingerprint: 'other' })).toEqual([2]);
      await advance(60_001);
      await store.hit([f]);
      expect(await store.settle([f], { failed: true, reserved: true, fingerprint: 'same' })).toEqual([1]);
    });

    it('distinct: counts distinct members, not events, and refuses at the limit', async () => {
      const { store } = await make();
      const d = spec({ limit: 3, kind: 'failures', distinct: true, blockMs: 600_000 });
      for (const m of ['a', 'b', 'a', 'a', 'b']) {
        expect((await store.hit([d])).ok).toBe(true);
        await store.settle([d], { failed: true, reserved: true, members: [m] });
      }
      expect((await store.peek(d.key)).count).toBe(2);
      expect((await store.peek(d.key)).inflight).toBe(0); // each settle gave its reservation back
      await store.hit([d]);
      expect(await store.settle([d], { failed: true, reserved: true, members: ['c'] })).toEqual([3]);
      expect(await store.hit([d])).toMatchObject({ ok: false, blocked: true, count: 3 });
    });

    it('escalating blocks grow by blockGrowth within blockMemory, capped by blockMax', async () => {
      const { store, advance } = await make();
      const s = spec({ limit: 1, blockMs: 60_000, windowMs: 1_000, blockGrowth: 2, blockMemoryMs: 86_400_000, blockMaxMs: 200_000 });
      const lengths: number[] = [];
      for (let i = 0; i < 4; i++) {
        await store.hit([s]);
        const r = await store.hit([s]);
        lengths.push(r.ok ? 0 : Math.round(r.retryAfterMs / 1000));
        await advance(lengths.at(-1)! * 1000 + 1);
      }
      expect(lengths).toEqual([60, 120, 200, 200]);
    });

    it('a growing block never passes a year, whatever its growth (Redis refuses a PX past its range)', async () => {
      const { store, advance } = await make();
      const s = spec({ limit: 1, blockMs: 86_400_000, windowMs: 1_000, blockGrowth: 100, blockMemoryMs: 366 * 86_400_000 });
      const days: number[] = [];
      for (let i = 0; i < 3; i++) {
        await store.hit([s]);
        const r = await store.hit([s]);
        days.push(r.ok ? 0 : Math.round(r.retryAfterMs / 86_400_000));
        await advance(r.ok ? 1 : r.retryAfterMs + 1);
      }
      expect(days).toEqual([1, 100, 366]); // 10,000 days uncapped
    });

    it('hit names the specs whose block it started', async () => {
      const { store } = await make();
      const blocking = spec({ limit: 2, blockMs: 60_000 });
      const plain = spec({ limit: 2 });
      expect(await store.hit([plain, blocking])).toEqual(expect.not.objectContaining({ blockedNow: expect.anything() }));
      expect(await store.hit([plain, blocking])).toMatchObject({ ok: true, blockedNow: [1] });
    });

    it('password hints: kept on success for their TTL, replaced by the next success, matched only exactly', async () => {
      const { store, advance } = await make();
      const s = spec({ limit: 1, kind: 'failures', hintExempt: true, blockMs: 600_000 });
      const key = `h-${s.key}`;
      await store.hit([s]);
      await store.settle([s], { failed: true, reserved: true });
      // No hint yet: nothing matches, the rule refuses.
      expect(await store.hit([s], { hint: { key, value: 'abc123' } })).toMatchObject({ ok: false, blocked: true });
      // A failed login never sets a hint.
      await store.settle([], { failed: true, reserved: false, hint: { key, value: 'abc123', ttlMs: 60_000 } });
      expect((await store.hit([s], { hint: { key, value: 'abc123' } })).ok).toBe(false);
      await store.settle([], { failed: false, reserved: false, hint: { key, value: 'abc123', ttlMs: 60_000 } });
      expect(await store.hit([s], { hint: { key, value: 'abc123' } })).toMatchObject({ ok: true, hintMatch: true });
      expect(await store.hit([s], { hint: { key, value: 'abc12' } })).toMatchObject({ ok: false });
      // A new password that succeeds replaces the hint; the old one no longer matches.
      await store.settle([], { failed: false, reserved: false, hint: { key, value: 'def456', ttlMs: 60_000 } });
      expect((await store.hit([s], { hint: { key, value: 'abc123' } })).ok).toBe(false);
      expect((await store.hit([s], { hint: { key, value: 'def456' } })).ok).toBe(true);
      await advance(60_001);
      expect((await store.hit([s], { hint: { key, value: 'def456' } })).ok).toBe(false);
    });

    it('successes: distinct users who logged in from an address, remembered after the last', async () => {
      const { store, advance } = await make();
      const s = spec({ limit: 100 });
      const key = `se-${s.key}`;
      expect(await store.hit([s], { successesKey: key })).toMatchObject({ ok: true, successes: 0 });
      for (const member of ['u1', 'u2', 'u1', 'u3']) {
        await store.settle([], { failed: false, reserved: false, success: { key, member, ttlMs: 60_000 } });
        await advance(30_000);
      }
      await store.settle([], { failed: true, reserved: false, success: { key, member: 'u4', ttlMs: 60_000 } });
      expect(await store.hit([s], { successesKey: key })).toMatchObject({ ok: true, successes: 3 });
      await advance(60_001);
      expect(await store.hit([s], { successesKey: key })).toMatchObject({ ok: true, successes: 0 });
    });

    specFieldContract(make);
    subjectContract(make);
    recordContract(make);
    sendingContract(make);
  });
}
