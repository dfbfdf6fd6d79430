import { expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { storeContract } from '../contract/store-contract.js';

storeContract('memory', async () => {
  const clock = new ManualClock();
  const store = new MemoryStore(clock);
  return { store, advance: async (ms) => clock.advance(ms) };
});

it('memory store sweeps expired entries so cycling keys cannot grow it', async () => {
  const clock = new ManualClock();
  const store = new MemoryStore(clock);
  for (let i = 0; i < 1000; i++) {
    await store.hit([{ key: `ip-${i}`, kind: 'attempts', limit: 5, windowMs: 1000, blockMs: null }]);
  }
  expect(store.size).toBe(1000);
  clock.advance(1001);
  store.sweep();
  expect(store.size).toBe(0);
  await store.close();
});
