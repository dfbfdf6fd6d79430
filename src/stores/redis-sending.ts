// The Redis store's sending counts and known recipients (limits/sending.ts): per account a
// hash of counts and a sorted set of recipient prints, both under the account's hash tag
// (keys.ts' slotTag), so lua/sending.lua reads and writes them in one atomic call, on one
// Cluster slot. The same rules as memory-sending.ts.
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import { slotTag } from '../limits/keys.js';
import type { LimitStore, SendingCounts } from './store.js';

export type SendingOps = Required<Pick<LimitStore, 'sendingPeek' | 'sendingAdd' | 'sendingReset'>>;
type WithSending = { mgSending(counts: string, known: string, ...argv: (string | number)[]): Promise<number[]> };

const counts = (v: number[]): SendingCounts => ({ messages: v[0]!, recipients: v[1]!, newRecipients: v[2]!, ttlMs: v[3]! });

export function redisSending(redis: Redis | Cluster): SendingOps {
  redis.defineCommand('mgSending', { numberOfKeys: 2, lua: readFileSync(new URL('./lua/sending.lua', import.meta.url), 'utf8') });
  const client = redis as (Redis | Cluster) & WithSending;
  const stored = (key: string) => `${slotTag(key)}${key}`;
  // Redis refuses PEXPIRE 0 and fractions: a TTL is a whole millisecond or more.
  const ms = (n: number) => Math.max(1, Math.round(n));
  return {
    async sendingPeek(countsKey, knownKey, prints, at) {
      const v = await client.mgSending(stored(countsKey), stored(knownKey), 'peek', Math.round(at.atMs), ms(at.knownTtlMs), ...prints);
      return { ...counts(v), known: v.slice(4).map((k) => k === 1) };
    },
    async sendingAdd(countsKey, knownKey, prints, b) {
      const v = await client.mgSending(stored(countsKey), stored(knownKey), 'add', Math.round(b.atMs), ms(b.knownTtlMs), ms(b.windowMs), b.knownCap, ...prints);
      return { ...counts(v), added: v[4]! };
    },
    async sendingReset(countsKey, knownKey) {
      await client.del(stored(countsKey), ...(knownKey !== undefined ? [stored(knownKey)] : []));
    },
  };
}
