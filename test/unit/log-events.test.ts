// The log's `event` field is a fixed vocabulary (logging/logger.ts LOG_EVENTS): every event a
// source file writes is in it, and every entry is written somewhere, so neither can drift.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOG_EVENTS } from '../../src/logging/logger.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('log events', () => {
  it('src writes exactly the events of LOG_EVENTS', () => {
    const src = new URL('../../src', import.meta.url).pathname;
    const used = new Set<string>();
    for (const file of sources(src)) for (const m of readFileSync(file, 'utf8').matchAll(/\bevent: '([a-z]+\.[a-z-]+)'/g)) used.add(m[1]!);
    expect([...used].sort()).toEqual([...LOG_EVENTS].sort());
  });

  it('README documents the events operators act on', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const e of ['auth.attempt', 'auth.bug', 'auth.record-failed', 'session.refused', 'session.admission-failed', 'backend.down', 'backend.up', 'store.fallback']) {
      expect(readme, e).toContain(`\`${e}\``);
    }
  });
});
