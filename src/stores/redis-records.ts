// The Redis store's capped records (an account's login history, its password prints): one
// hash per record under its subject's hash tag (keys.ts' slotTag), written by lua/record.lua
// (lua/row.lua: the same rules as records.ts; a login's history row goes with its settle where
// it can, redis.ts), read with HGETALL.
import type { Cluster, Redis } from 'ioredis';
import { slotTag } from '../limits/keys.js';
import { luaScript } from './lua-scripts.js';
import { sortedRows } from './records.js';
import type { LimitStore, RecordBounds, RecordEntry } from './store.js';
import { PLAIN_WIRE } from './wire.js';

export type RecordOps = Required<Pick<LimitStore, 'historyAdd' | 'historyGet' | 'historyTake'>>;
type WithRecord = { mgRecord(key: string, field: string, atMs: number, ttlMs: number, cap: number, existing: number): Promise<number> };

/** A record's key as stored: its subject's hash tag, then the key. */
const storedRecord = (key: string) => `${slotTag(key)}${key}`;

/** historyAdd's bounds as the scripts take them (row.lua), whichever script writes the row. */
export function recordArgs(b: RecordBounds): { atMs: number; ttlMs: number; cap: number; existing: boolean } {
  return { atMs: Math.round(b.atMs), ttlMs: Math.max(1, Math.round(b.ttlMs)), cap: b.cap, existing: b.existing === true };
}

export function redisRecords(redis: Redis | Cluster): RecordOps {
  redis.defineCommand('mgRecord', { numberOfKeys: 1, lua: luaScript('record', PLAIN_WIRE) });
  const client = redis as (Redis | Cluster) & WithRecord;
  return {
    async historyAdd(key, field, b) {
      const r = recordArgs(b);
      await client.mgRecord(storedRecord(key), field, r.atMs, r.ttlMs, r.cap, r.existing ? 1 : 0);
    },
    async historyGet(key) {
      const rows: RecordEntry[] = Object.entries(await client.hgetall(storedRecord(key))).flatMap(([field, v]) => {
        const [count, firstMs, lastMs] = v.split(':').map(Number);
        return count && firstMs && lastMs ? [{ field, count, firstMs, lastMs }] : [];
      });
      return sortedRows(rows);
    },
    async historyTake(key, field) {
      return (await client.hdel(storedRecord(key), field)) > 0;
    },
  };
}
