// Test-file hooks (vitest): a real Dovecot with a proxy in front of it for the whole file.
// Kept apart from hostile.ts, which the soak script imports outside vitest.
import { afterAll, beforeAll } from 'vitest';
import { startDovecot, type DovecotInstance } from './dovecot.js';
import { proxyConfig } from './hostile.js';
import { startTestProxy, type TestProxy } from './proxy.js';

/** For a test file: a real Dovecot and a proxy in front of it (proxyConfig), started before
 *  the file's tests and stopped after them. Read rig.dovecot / rig.proxy inside tests. */
export function dovecotWithProxy(): { dovecot: DovecotInstance; proxy: TestProxy } {
  const rig = {} as { dovecot: DovecotInstance; proxy: TestProxy };
  beforeAll(async () => {
    rig.dovecot = await startDovecot();
    rig.proxy = await startTestProxy(proxyConfig(rig.dovecot));
  });
  afterAll(async () => {
    await rig.proxy?.stop();
    await rig.dovecot?.stop();
  });
  return rig;
}
