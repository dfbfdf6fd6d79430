// The Redis store's capped records (an account's login history, its password prints): one
// hash per record under its subject's hash tag (keys.ts' slotTag), written by lua/record.lua
// (the same rules as records.ts), read with HGETALL.
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import { slotTag } from '../limits/keys.js';
import { sortedRows } from './records.js';
import type { LimitStore, RecordEntry } from './store.js';

export type RecordOps = Required<Pick<LimitStore, 'historyAdd' | 'historyGet' | 'historyTake'>>;
type WithRecord = { mgRecord(key: string, field: string, atMs: number, ttlMs: number, cap: number, existing: number): Promise<number> };

export function redisRecords(redis: Redis | Cluster): RecordOps {
  redis.defineCommand('mgRecord', { numberOfKeys: 1, lua: readFileSync(new URL('./lua/record.lua', import.meta.url), 'utf8') });
  const client = redis as (Redis | Cluster) & WithRecord;
  const stored = (key: string) => `${slotTag(key)}${key}`;
  return {
    async historyAdd(key, field, b) {
      await client.mgRecord(stored(key), field, Math.round(b.atMs), Math.max(1, Math.round(b.ttlMs)), b.cap, b.existing ? 1 : 0);
    },
    async historyGet(key) {
      const rows: RecordEntry[] = Object.entries(await client.hgetall(stored(key))).flatMap(([field, v]) => {
        const [count, firstMs, lastMs] = v.split(':').map(Number);
        return count && firstMs && lastMs ? [{ field, count, firstMs, lastMs }] : [];
      });
      return sortedRows(rows);
    },
    async historyTake(key, field) {
      return (await client.hdel(stored(key), field)) > 0;
    },
  };
}
