// Test-file hooks (vitest): a real Dovecot for the whole file, with the proxies a test file
// starts in front of it stopped after its tests, or one standard proxy.
// Kept apart from hostile.ts, which the soak script imports outside vitest.
import { afterAll, beforeAll } from 'vitest';
import { startDovecot, type DovecotInstance, type DovecotOptions } from './dovecot.js';
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

export interface DovecotRig {
  /** Set once the file's hooks have run: read it inside tests and helpers, not at load time. */
  dovecot: DovecotInstance;
  /** Every proxy started with proxy(), stopped after the file's tests. */
  proxies: TestProxy[];
  proxy(config: Record<string, unknown>): Promise<TestProxy>;
}

/** For a test file: a real Dovecot started before its tests (with `opts`), and a proxy factory
 *  whose proxies are stopped after them, before Dovecot. */
export function dovecotForFile(opts: DovecotOptions = {}): DovecotRig {
  const rig: DovecotRig = {
    dovecot: undefined as unknown as DovecotInstance,
    proxies: [],
    async proxy(config) {
      const p = await startTestProxy(config);
      rig.proxies.push(p);
      return p;
    },
  };
  beforeAll(async () => {
    rig.dovecot = await startDovecot(opts);
  });
  afterAll(async () => {
    await Promise.all(rig.proxies.map((p) => p.stop()));
    await rig.dovecot?.stop();
  });
  return rig;
}
