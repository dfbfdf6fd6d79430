// The Redis scripts' wire format, written once. Per counter spec a script gets the five keys
// derived from its counter key (KEYS) and every CounterSpec field but the key (ARGV), in the
// order below; then the call's own values; then a trailing block of per-spec values for this
// call (settle's distinct members). redis.ts encodes with encodeArgs and puts luaHeader() (the
// place of each value, by name) and lua/lib.lua before each script. Pure: no I/O.
import { INFLIGHT_RETRY_MS, MAX_BLOCK_MS, RESERVATION_TTL_MS, type CounterSpec } from './store.js';

/** How a value travels: a word as is ('' for none), a number (0 for none), a flag as 1 | 0
 *  (lib.lua reads them with word, num and flag). */
type WireType = 'word' | 'number' | 'flag';
type Fields = Readonly<Record<string, WireType>>;
type Plain = string | number | boolean | null | undefined;
type Values<F extends Fields> = { readonly [K in keyof F]: Plain };

/** Every CounterSpec field but its key, in the order they travel: a field added to CounterSpec
 *  and not here does not compile. A null blockMs (until the window ends) travels as 0. */
const SPEC_FIELDS = {
  kind: 'word',
  limit: 'number',
  windowMs: 'number',
  blockMs: 'number',
  knownGoodExempt: 'flag',
  hintExempt: 'flag',
  resetOnSuccess: 'flag',
  unreserved: 'flag',
  distinct: 'flag',
  dedupe: 'flag',
  blockGrowth: 'number',
  blockMemoryMs: 'number',
  blockMaxMs: 'number',
} as const satisfies Record<Exclude<keyof CounterSpec, 'key'>, WireType>;
const SPEC_ENTRIES = entries(SPEC_FIELDS);

/** The keys a spec's counter key gives (in Lua: COUNTER_KEY, RESERVED_KEY…), in the order each
 *  spec sends them: counter (a number, or a HyperLogLog for distinct specs), failure reservations,
 *  block (its value: when it started), dedupe set, offences (blocks within blockMemoryMs). */
export const SPEC_KEYS = { counterKey: '', reservedKey: ':r', blockKey: ':b', dedupeKey: ':d', offencesKey: ':o' } as const;
export type SpecKey = keyof typeof SPEC_KEYS;

/** What one script gets besides its specs: the call's values, and per spec, this call's. */
export interface ScriptWire<C extends Fields = Fields, E extends Fields = Fields> {
  call: C;
  each: E;
}

/** The four keys every hit and settle sends after the specs' keys (in Lua: KNOWN_GOOD_KEY…),
 *  the attempt's known-good pair, its account's password hint, its address's successes, and
 *  (settle) the record its history row goes to; one not given travels as a placeholder in the
 *  same slot, and its call flag (or '') says so. */
export const EXTRA_KEYS = { knownGoodKey: 1, hintKey: 2, successesKey: 3, recordKey: 4 } as const;

/** hit: count (false: check only, at connect); knownGood and successes say whether those keys
 *  are real; hint is the attempt's password hint ('' none). knownGoodElsewhere and
 *  hintElsewhere: the attempt has a known-good pair or a hint, kept in another Cluster slot
 *  (redis-plan.ts), so an exempt spec that would refuse here is counted provisionally and
 *  reported instead of refusing: the caller decides with the other slot's answer. */
export const HIT_WIRE = {
  call: { count: 'flag', knownGood: 'flag', hint: 'word', successes: 'flag', knownGoodElsewhere: 'flag', hintElsewhere: 'flag' },
  each: {},
} as const satisfies ScriptWire;

/** settle: the SettleRequest. On success only: knownGoodTtlMs > 0 remembers the pair, hint (with
 *  hintTtlMs) becomes the account's hint, successMember joins the address's successes. Success
 *  or failure: recordField ('' none) is a row counted in the record at RECORD_KEY, last, with
 *  historyAdd's bounds (record.lua's rules). Per spec: the member a distinct spec counts. */
export const SETTLE_WIRE = {
  call: {
    failed: 'flag', reserved: 'flag', fingerprint: 'word', knownGoodTtlMs: 'number',
    hint: 'word', hintTtlMs: 'number', successMember: 'word', successesTtlMs: 'number',
    recordField: 'word', recordAtMs: 'number', recordTtlMs: 'number', recordCap: 'number', recordExisting: 'flag',
  },
  each: { member: 'word' },
} as const satisfies ScriptWire;

/** abort: the specs of a hit whose attempt another slot refused; nothing else. */
export const ABORT_WIRE = { call: {}, each: {} } as const satisfies ScriptWire;

/** peek and block name their keys and values themselves (one counter, no specs). */
export const PLAIN_WIRE = { call: {}, each: {} } as const satisfies ScriptWire;

/** A field set's [name, type] pairs, in order. */
function entries<F extends Fields>(fields: F): [keyof F & string, WireType][] {
  return Object.entries(fields) as [keyof F & string, WireType][];
}

function push<V>(out: (string | number)[], fields: readonly [keyof V, WireType][], values: V): void {
  for (const [name, type] of fields) {
    const v = values[name];
    out.push(type === 'flag' ? (v ? 1 : 0) : type === 'word' ? String(v ?? '') : Number(v ?? 0));
  }
}

/** ARGV for one call: the specs, the call's values, then each spec's values for this call
 *  (`each(i)`: spec i's). */
export function encodeArgs<C extends Fields, E extends Fields>(
  wire: ScriptWire<C, E>,
  specs: readonly CounterSpec[],
  call: Values<C>,
  each: (i: number) => Values<E>,
): (string | number)[] {
  const out: (string | number)[] = [];
  for (const s of specs) push(out, SPEC_ENTRIES, s);
  push(out, entries(wire.call), call);
  const perSpec = entries(wire.each);
  if (perSpec.length) specs.forEach((_, i) => push(out, perSpec, each(i)));
  return out;
}

/** The Lua name of a field: windowMs is WINDOW_MS. */
const luaName = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

/** `local A, B = 1, 2`: each name's place (from 1) in its block. */
function luaPlaces(names: string[]): string[] {
  return names.length ? [`local ${names.map(luaName).join(', ')} = ${names.map((_, j) => j + 1).join(', ')}`] : [];
}

/** The Lua that lib.lua and the script read their layout and shared constants from: the place
 *  of each value by name. Names, not a table of decoded values per spec: Redis runs a script's
 *  whole body on every call, and building those tables cost about a fifth of a call's time. */
export function luaHeader(wire: ScriptWire): string {
  const blocks = [Object.keys(SPEC_FIELDS), Object.keys(SPEC_KEYS), Object.keys(wire.call), Object.keys(wire.each), Object.keys(EXTRA_KEYS)];
  const names = blocks.flat().map(luaName);
  if (new Set(names).size !== names.length) throw new Error(`wire.ts: a Lua name is used twice in ${names.join(', ')}`);
  return [
    '-- Generated by src/stores/wire.ts: where each value is, and the constants shared with TypeScript.',
    `local SPEC_ARGC, SPEC_KEYC, CALL_ARGC, EACH_ARGC, EXTRA_KEYC = ${blocks.map((b) => b.length).join(', ')}`,
    ...blocks.flatMap(luaPlaces),
    `local RESERVATION_TTL_MS, INFLIGHT_RETRY_MS, MAX_BLOCK_MS = ${RESERVATION_TTL_MS}, ${INFLIGHT_RETRY_MS}, ${MAX_BLOCK_MS}`,
    '',
  ].join('\n');
}
