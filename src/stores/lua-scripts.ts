// The Lua scripts as Redis runs them: the layout and constants wire.ts generates, lib.lua's
// prelude, the fragments a script shares with another (row.lua), then the script itself. Read
// from next to this module: src/stores/lua, or dist/stores/lua (scripts/copy-assets.mjs).
import { readFileSync } from 'node:fs';
import { luaHeader, type ScriptWire } from './wire.js';

const lua = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/** The fragments a script needs after lib.lua: a record's row, written by record.lua alone
 *  (historyAdd) and by settle.lua with a login's settle. */
const FRAGMENTS: Readonly<Record<string, readonly string[]>> = { settle: ['row'], record: ['row'] };

export function luaScript(name: string, wire: ScriptWire): string {
  return [luaHeader(wire), lua('lib'), ...(FRAGMENTS[name] ?? []).map(lua), lua(name)].join('');
}
