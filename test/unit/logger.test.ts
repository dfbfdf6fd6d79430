// The second line of defence for secrets in logs: fields named like one are redacted in log
// objects and in a child logger's bindings, whatever the call site passed.
import { describe, expect, it } from 'vitest';
import { createLogger, REDACT_PATHS } from '../../src/logging/logger.js';

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
