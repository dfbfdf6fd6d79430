// Writes docs/config.md from the compiled schema (run after `npm run build`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { renderConfigDocs } from '../dist/config/docs.js';

mkdirSync('docs', { recursive: true });
writeFileSync('docs/config.md', renderConfigDocs());
console.log('wrote docs/config.md');
