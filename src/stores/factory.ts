// Builds the configured limit store: memory, or Redis behind the resilient wrapper with an
// in-memory fallback that keeps the same rules.
import type { Clock } from '../clock.js';
import type { StoreConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { MemoryStore } from './memory.js';
import { connectRedis, RedisStore } from './redis.js';
import { ResilientStore } from './resilient.js';
import type { LimitStore } from './store.js';

export function createStore(cfg: StoreConfig, clock: Clock, log: Logger): LimitStore {
  if (cfg.type === 'memory') return new MemoryStore(clock);
  const redis = new RedisStore(connectRedis(cfg.redis), { clock });
  return new ResilientStore(redis, new MemoryStore(clock), cfg.redis.onError, cfg.redis.timeout, log);
}
