// The second line of defence for secrets in logs: fields named like one are redacted in log
// objects and in a child logger's bindings, whatever the call site passed. And every line fits
// one atomic write to stdout.
import { describe, expect, it } from 'vitest';
import { createLogger, fitLine, LOG_MAX_WRITE, REDACT_PATHS } from '../../src/logging/logger.js';

function captured() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

describe('logger redaction', () => {
  it.each(REDACT_PATHS)('"%s" in a log object is written as [redacted]', (name) => {
    const { log, lines } = captured();
    log.info({ event: 'auth.attempt', user: 'alice', [name]: 'hunter2' }, 'x');
    expect(lines).toEqual([expect.objectContaining({ user: 'alice', [name]: '[redacted]' })]);
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('in a child logger\'s bindings too, and the object passed in is left as it was', () => {
    const { log, lines } = captured();
    const fields = { event: 'auth.attempt', token: 'ya29.secret' };
    log.child({ session: 's1', secret: 'k3y' }).info(fields, 'x');
    expect(lines[0]).toMatchObject({ session: 's1', secret: '[redacted]', token: '[redacted]' });
    expect(JSON.stringify(lines)).not.toMatch(/k3y|ya29/);
    expect(fields.token).toBe('ya29.secret');
  });
});

describe('log lines fit one atomic write (worker mode: several processes share stdout)', () => {
  it('a line under PIPE_BUF is written as it is', () => {
    const line = `${JSON.stringify({ level: 30, event: 'auth.attempt', user: 'é'.repeat(1000) })}\n`;
    expect(fitLine(line)).toBe(line);
  });

  it('a longer line keeps its fields, cut to fit, still one JSON object, and says so', () => {
    const { log, lines } = captured();
    const raw: string[] = [];
    const big = createLogger('info', { write: (s: string) => void raw.push(s) }, 2);
    big.error({ event: 'auth.bug', err: `Error: boom\n${'    at frame (file.js:1:1)\n'.repeat(400)}`, user: 'ü'.repeat(3000) }, 'bug');
    expect(Buffer.byteLength(raw[0]!)).toBeLessThanOrEqual(LOG_MAX_WRITE);
    expect(raw[0]!.endsWith('}\n')).toBe(true);
    expect(JSON.parse(raw[0]!)).toMatchObject({ level: 50, worker: 2, event: 'auth.bug', msg: 'bug', truncated: true, err: expect.stringMatching(/^Error: boom/) });
    log.info({ event: 'auth.attempt' }, 'x');
    expect(lines[0]).not.toHaveProperty('worker'); // one process: no worker field
  });

  it('a line with too many fields to cut is replaced by its level, event and a note', () => {
    const obj: Record<string, string> = { event: 'auth.bug' };
    for (let i = 0; i < 600; i++) obj[`f${i}`] = 'x';
    const out = fitLine(`${JSON.stringify({ level: 50, ...obj })}\n`);
    expect(JSON.parse(out)).toEqual({ level: 50, event: 'auth.bug', msg: 'log line too long', truncated: true });
  });
});
