// The backend capability cache: first probe at start, periodic refresh (fake timers),
// a failed probe keeps the last good answer.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CapabilityCache } from '../../src/backend/capabilities.js';
import { serverTarget } from '../../src/backend/pool.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging/logger.js';
import type { BackendReplay } from '../../src/backend/types.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('CapabilityCache', () => {
  it('probes at start, refreshes every probeInterval, and keeps the last answer when a probe fails', async () => {
    vi.useFakeTimers();
    const answers: (string[] | Error)[] = [['PIPELINING'], new Error('down'), ['PIPELINING', 'CHUNKING']];
    const replay = {
      login: vi.fn(),
      probeCapabilities: vi.fn(async () => {
        const a = answers.shift()!;
        if (a instanceof Error) throw a;
        return a;
      }),
    } as unknown as BackendReplay;
    const cfg = parseConfig({
      listeners: [{ name: 's', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }],
      backends: { b: { host: '127.0.0.1', port: 25, probeInterval: '1m' } },
    });
    const b = cfg.backends.b!;
    const cache = new CapabilityCache([{ backend: 'b', server: serverTarget(b, b.servers[0]!), probeInterval: b.probeInterval, replay, hostname: 'mx.test' }], createLogger('silent'));
    expect(cache.get('b')).toEqual([]);
    await cache.start();
    expect(cache.get('b')).toEqual(['PIPELINING']);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(cache.get('b')).toEqual(['PIPELINING']); // the failed probe changed nothing
    await vi.advanceTimersByTimeAsync(60_000);
    expect(cache.get('b')).toEqual(['PIPELINING', 'CHUNKING']);
    expect(replay.probeCapabilities).toHaveBeenCalledTimes(3);
    cache.stop();
  });
});
