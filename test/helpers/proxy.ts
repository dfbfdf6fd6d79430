// Starts mailgate in-process for integration tests, with its log lines captured in memory.
import { Writable } from 'node:stream';
import type { Clock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging/logger.js';
import { startProxy, type Proxy } from '../../src/main.js';

export interface CapturedLog {
  lines: Record<string, unknown>[];
  raw: string[];
}

export function captureLogger(level = 'debug') {
  const captured: CapturedLog = { lines: [], raw: [] };
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        captured.raw.push(line);
        captured.lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = createLogger(level, dest);
  return { logger, captured };
}

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
