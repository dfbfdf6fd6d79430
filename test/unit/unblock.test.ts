// DELETE /api/v1/blocks?userHash=… (admin/unblock.ts) on the memory store and a manual clock:
// lifts the account's own blocks (every rule keyed on it), not an ip+user block nor another
// account's; a malformed hash is refused, an account without a block is a 404.
import { describe, expect, it } from 'vitest';
import { unblockUserRoute } from '../../src/admin/unblock.js';
import { ManualClock } from '../../src/clock.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { MemoryStore } from '../../src/stores/memory.js';

const keys = new KeyBuilder('unblock-test-secret-0123456789');
const q = (userHash: string) => new URLSearchParams({ userHash });

describe('unblock an account by its hash', () => {
  it("lifts the account's own blocks, and only those", async () => {
    const store = new MemoryStore(new ManualClock());
    const alice = keys.userHash('alice');
    const own = [`r:user-logins:u:${alice}`, `r:user-failures:u:${alice}`];
    const others = [`r:ip-user:iu:192.0.2.1:${alice}`, `r:user-logins:u:${keys.userHash('bob')}`];
    for (const k of [...own, ...others]) await store.block(k, 600_000);
    const answer = await unblockUserRoute('DELETE', '/api/v1/blocks', q(alice), store);
    expect(answer?.reset.sort()).toEqual(['user-failures', 'user-logins']);
    expect((await store.blocks()).map((b) => b.key).sort()).toEqual(others.sort());
    await expect(unblockUserRoute('DELETE', '/api/v1/blocks', q(alice), store)).rejects.toMatchObject({ status: 404 });
  });

  it('refuses a malformed hash; other methods and paths are not its', async () => {
    const store = new MemoryStore(new ManualClock());
    for (const bad of ['', 'alice', 'x'.repeat(23), `${'a'.repeat(21)}/`]) {
      await expect(unblockUserRoute('DELETE', '/api/v1/blocks', q(bad), store)).rejects.toMatchObject({ status: 400 });
    }
    expect(await unblockUserRoute('GET', '/api/v1/blocks', q('a'.repeat(22)), store)).toBeNull();
    expect(await unblockUserRoute('DELETE', '/api/v1/blocks/alice', q('a'.repeat(22)), store)).toBeNull();
  });
});
