// The behaviour every LimitStore must have. Run against each implementation so they
// cannot drift (memory now, Redis with the Redis store).
import { describe, expect, it } from 'vitest';
import type { CounterSpec, LimitStore } from '../../src/stores/store.js';

export interface StoreHarness {
  store: LimitStore;
  /** Move the store's notion of time forward (fake clock, or Redis-side expiry). */
  advance(ms: number): Promise<void>;
}

const spec = (over: Partial<CounterSpec> = {}): CounterSpec => ({
  key: `k-${Math.random().toString(36).slice(2)}`,
  kind: 'attempts',
  limit: 3,
  windowMs: 60_000,
  blockMs: null,
  ...over,
});

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
      await store.settle([s], false);
      expect(await store.peek(s.key)).toMatchObject({ count: 0, inflight: 0 });
      for (let i = 0; i < 2; i++) {
        expect((await store.hit([s])).ok).toBe(true);
        await store.settle([s], true);
      }
      expect((await store.peek(s.key)).count).toBe(2);
      expect(await store.hit([s])).toMatchObject({ ok: false, count: 2 });
    });

    it('in-flight reservations stop parallel attempts overshooting a failures limit', async () => {
      const { store } = await make();
      const s = spec({ kind: 'failures', limit: 5 });
      const results = await Promise.all(Array.from({ length: 50 }, () => store.hit([s])));
      expect(results.filter((r) => r.ok)).toHaveLength(5);
      await Promise.all(Array.from({ length: 5 }, () => store.settle([s], true)));
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
      await store.settle([s], true);
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
  });
}
