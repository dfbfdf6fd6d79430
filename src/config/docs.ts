// Renders docs/config.md from the config schema, so the docs cannot drift from the code.
// Pure: returns text; scripts/config-docs.mjs writes it, a unit test checks it is current.
import { z } from 'zod';
import { configSchema } from './schema.js';

interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
}

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (s.anyOf) return s.anyOf.map(typeOf).join(' \\| ');
  const t = Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any');
  const range = s.minimum !== undefined || s.maximum !== undefined ? ` (${s.minimum ?? ''}..${s.maximum ?? ''})` : '';
  return t + range;
}

function rows(s: JsonSchema, path: string, required: boolean, out: string[]): void {
  const def = s.default === undefined ? (required ? 'required' : '') : `\`${JSON.stringify(s.default)}\``;
  if (path) out.push(`| \`${path}\` | ${typeOf(s)} | ${def} | ${(s.description ?? '').replace(/\|/g, '\\|')} |`);
  if (s.properties) {
    for (const [k, v] of Object.entries(s.properties)) rows(v, path ? `${path}.${k}` : k, s.required?.includes(k) ?? false, out);
  }
  if (s.items) rows(s.items, `${path}[]`, false, out);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') rows(s.additionalProperties, `${path}.<name>`, false, out);
}

export function renderConfigDocs(): string {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const out = [
    '# Configuration reference',
    '',
    'Generated from src/config/schema.ts by `npm run docs:config`; do not edit by hand.',
    'Durations are `250ms`, `90s`, `10m`, `1h`, `7d` or integer seconds. Unknown keys are errors.',
    '',
    '| Key | Type | Default | Meaning |',
    '|---|---|---|---|',
  ];
  rows(schema, '', true, out);
  return `${out.join('\n')}\n`;
}
