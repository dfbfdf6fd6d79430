// The contract for capped records (login history, password prints), run against every store
// with keys as limits/keys.ts builds them (one user's slot in a Redis Cluster).
import { describe, expect, it } from 'vitest';
import { KeyBuilder } from '../../src/limits/keys.js';
import type { CounterSpec, LimitStore, RecordRow } from '../../src/stores/store.js';
import type { StoreHarness } from './harness.js';

const keys = new KeyBuilder('contract-records-secret-01');
const T0 = 1_800_000_000_000;
const fresh = () => keys.historyKey(`user-${Math.random().toString(36).slice(2)}`);
const ops = (s: LimitStore) => s as Required<Pick<LimitStore, 'historyAdd' | 'historyGet' | 'historyTake'>>;

export function recordContract(make: () => Promise<StoreHarness>): void {
  describe('capped records', () => {
    it('counts one field in one row with its first and last event', async () => {
      const store = ops((await make()).store);
      const key = fresh();
      for (const dt of [0, 1_000, 2_000]) await store.historyAdd(key, '192.0.2.0/24|imap|fail', { atMs: T0 + dt, ttlMs: 60_000, cap: 5 });
      await store.historyAdd(key, '192.0.2.0/24|imap|ok', { atMs: T0 + 3_000, ttlMs: 60_000, cap: 5 });
      expect(await store.historyGet(key)).toEqual([
        { field: '192.0.2.0/24|imap|ok', count: 1, firstMs: T0 + 3_000, lastMs: T0 + 3_000 },
        { field: '192.0.2.0/24|imap|fail', count: 3, firstMs: T0, lastMs: T0 + 2_000 },
      ]);
    });

    it('keeps at most cap rows: the one seen least lately goes', async () => {
      const store = ops((await make()).store);
      const key = fresh();
      for (const [i, f] of ['a', 'b', 'c'].entries()) await store.historyAdd(key, f, { atMs: T0 + i, ttlMs: 60_000, cap: 3 });
      await store.historyAdd(key, 'a', { atMs: T0 + 10, ttlMs: 60_000, cap: 3 });
      await store.historyAdd(key, 'd', { atMs: T0 + 11, ttlMs: 60_000, cap: 3 });
      expect((await store.historyGet(key)).map((r) => r.field)).toEqual(['d', 'a', 'c']);
    });

    it('drops rows whose last event is older than the TTL, and the record with its TTL', async () => {
      const { store: s, advance } = await make();
      const store = ops(s);
      const key = fresh();
      await store.historyAdd(key, 'old', { atMs: T0, ttlMs: 10_000, cap: 5 });
      await store.historyAdd(key, 'new', { atMs: T0 + 10_001, ttlMs: 10_000, cap: 5 });
      expect((await store.historyGet(key)).map((r) => r.field)).toEqual(['new']);
      await advance(10_001);
      expect(await store.historyGet(key)).toEqual([]);
    });

    it('existing: counts only in a record that exists', async () => {
      const store = ops((await make()).store);
      const key = fresh();
      await store.historyAdd(key, 'fail', { atMs: T0, ttlMs: 60_000, cap: 5, existing: true });
      expect(await store.historyGet(key)).toEqual([]);
      await store.historyAdd(key, 'ok', { atMs: T0, ttlMs: 60_000, cap: 5 });
      await store.historyAdd(key, 'fail', { atMs: T0 + 1, ttlMs: 60_000, cap: 5, existing: true });
      expect((await store.historyGet(key)).map((r) => [r.field, r.count])).toEqual([['fail', 1], ['ok', 1]]);
    });

    it("a settle's row (a login's history): written with it, or by historyAdd after it when the store left it, the same record", async () => {
      const { store: s } = await make();
      const store = ops(s);
      const user = `user-${Math.random().toString(36).slice(2)}`;
      const key = keys.historyKey(user);
      // The user's rule: on a Redis Cluster in the same slot as the record.
      const specs: CounterSpec[] = [{ key: keys.ruleKey({ name: 'u', key: 'user' }, '192.0.2.1', user), kind: 'failures', limit: 10, windowMs: 60_000, blockMs: null }];
      const login = async (failed: boolean, field: string, atMs: number) => {
        await s.hit(specs);
        const row: RecordRow = { key, field, bounds: { atMs, ttlMs: 60_000, cap: 5, existing: failed } };
        const counts = await s.settle(specs, { failed, reserved: true, record: row });
        if (!row.written) await store.historyAdd(row.key, row.field, row.bounds);
        return counts;
      };
      // A failure of an account without a history leaves none (existing), and still counts.
      expect(await login(true, 'fail', T0)).toEqual([1]);
      expect(await store.historyGet(key)).toEqual([]);
      await login(false, 'ok', T0 + 1);
      expect(await login(true, 'fail', T0 + 2)).toEqual([2]);
      expect(await login(true, 'fail', T0 + 3)).toEqual([3]);
      expect(await store.historyGet(key)).toEqual([
        { field: 'fail', count: 2, firstMs: T0 + 2, lastMs: T0 + 3 },
        { field: 'ok', count: 1, firstMs: T0 + 1, lastMs: T0 + 1 },
      ]);
    });

    it('takes a row once', async () => {
      const store = ops((await make()).store);
      const key = fresh();
      await store.historyAdd(key, 'alert', { atMs: T0, ttlMs: 60_000, cap: 1 });
      expect(await store.historyTake(key, 'alert')).toBe(true);
      expect(await store.historyTake(key, 'alert')).toBe(false);
      expect(await store.historyGet(key)).toEqual([]);
    });
  });
}
