// Copies the non-TypeScript files the compiled code reads (the Redis Lua scripts) next to it.
// Usage: node scripts/copy-assets.mjs [outDir]   (default dist)
import { cpSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2] ?? 'dist';
cpSync('src/stores/lua', join(out, 'stores', 'lua'), { recursive: true });
