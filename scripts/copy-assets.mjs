// Copies the non-TypeScript files the compiled code reads next to it: the Redis Lua scripts,
// the admin console's page, script and stylesheet (dist/admin/console), and the package
// version (dist/version.json, for `mailgate --version`).
// Usage: node scripts/copy-assets.mjs [outDir]   (default dist)
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2] ?? 'dist';
cpSync('src/stores/lua', join(out, 'stores', 'lua'), { recursive: true });
cpSync('src/admin/console', join(out, 'admin', 'console'), { recursive: true });
const { name, version } = JSON.parse(readFileSync('package.json', 'utf8'));
writeFileSync(join(out, 'version.json'), `${JSON.stringify({ name, version })}\n`);
