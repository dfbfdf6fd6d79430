// docs/config.md is generated from the schema; this fails when someone changes one without the other.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigDocs } from '../../src/config/docs.js';

describe('docs/config.md', () => {
  it('matches the schema (run npm run docs:config after changing src/config/schema.ts)', () => {
    expect(readFileSync('docs/config.md', 'utf8')).toBe(renderConfigDocs());
  });

  it('lists every contract key with its default', () => {
    const doc = renderConfigDocs();
    for (const key of ['listeners[].requireTls', 'backends.<name>.tlsVerify', 'limits.rules[].block', 'timeouts.preauth', 'limits.ipv6Prefix']) {
      expect(doc).toContain(`\`${key}\``);
    }
    expect(doc).toMatch(/`limits\.ipv6Prefix` \| integer \(1\.\.128\) \| `64`/);
  });
});
