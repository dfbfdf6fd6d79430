// Starts mailgate in-process for integration tests, with its log lines captured in memory.
import type { Clock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { startProxy, type Proxy } from '../../src/main.js';
import { captureLogger, type CapturedLog } from './log-capture.js';

export interface TestProxy extends Proxy {
  log: CapturedLog;
  port(listener: string): number;
}

export async function startTestProxy(config: Record<string, unknown>, opts: { clock?: Clock } = {}): Promise<TestProxy> {
  const cfg = parseConfig(config);
  const { logger, captured } = captureLogger();
  const proxy = await startProxy(cfg, { log: logger, ...opts });
  return { ...proxy, log: captured, port: (name) => proxy.addresses[name]!.port };
}
