// A mailgate logger whose JSON lines are kept in memory for tests to read. Loads only the
// logging module (no main.ts, no sockets), so unit tests can use it.
import { Writable } from 'node:stream';
import { createLogger } from '../../src/logging/logger.js';

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
