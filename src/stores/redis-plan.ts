// How one attempt is split over Redis Cluster slots: its specs grouped by hash tag
// (limits/keys.ts' slotTag), each with the extra keys (known-good pair, hint, successes, the
// history row's record) that share its tag, and the groups' hit replies merged into one
// decision. On one server (or Sentinel) there are no slots: everything is one group
// (ONE_SERVER). Pure: no I/O; redis.ts sends one script per group, all in parallel.
import { slotTag } from '../limits/keys.js';
import type { CounterSpec, HitOptions, HitResult } from './store.js';

/** The extra keys a hit or settle sends after its specs' (wire.ts' EXTRA_KEYS). */
export interface Extras {
  knownGoodKey?: string;
  hintKey?: string;
  successesKey?: string;
  /** Settle only: the record (login history) its row goes to (SettleRequest.record). */
  recordKey?: string;
}

const EXTRA_NAMES = ['knownGoodKey', 'hintKey', 'successesKey', 'recordKey'] as const;

/** The group a key goes to: its hash tag on a Cluster (slotTag, the default); on one server
 *  (or Sentinel) every key of an attempt can share one script, so one hit and one settle, as
 *  one script over every key is atomic over all of them. */
export type Grouping = (key: string) => string;
export const ONE_SERVER: Grouping = () => '';

/** The specs and extra keys of one attempt that live in one slot. */
export interface Group extends Extras {
  tag: string;
  /** Each spec's index in the attempt, ascending. */
  indexes: number[];
  specs: CounterSpec[];
}

/** Groups by tag, in the order of their first spec; a group for extra keys whose tag no spec
 *  has comes last (a small script that only reads or writes them). */
export function planGroups(specs: readonly CounterSpec[], extras: Extras, tagOf: Grouping = slotTag): Group[] {
  const byTag = new Map<string, Group>();
  const group = (tag: string) => {
    let g = byTag.get(tag);
    if (!g) byTag.set(tag, (g = { tag, indexes: [], specs: [] }));
    return g;
  };
  specs.forEach((s, i) => {
    const g = group(tagOf(s.key));
    g.indexes.push(i);
    g.specs.push(s);
  });
  for (const name of EXTRA_NAMES) {
    const key = extras[name];
    if (key !== undefined) group(tagOf(key))[name] = key;
  }
  return [...byTag.values()];
}

/** A refusal, with its spec's index in the attempt. */
export interface Refusal {
  index: number;
  retryAfterMs: number;
  count: number;
  blocked: boolean;
}

/** One group's hit reply (hit.lua), its indexes mapped back to the attempt's. */
export interface GroupReply {
  refusal?: Refusal;
  knownGood: boolean;
  hintMatch: boolean;
  successes: number;
  /** Exempt specs that refuse unless the exemption (read in another slot) holds: counted. */
  provisional: Refusal[];
  /** Blocks this hit started: the spec, its count, the block's length. */
  started: Started[];
}

export interface Started {
  index: number;
  count: number;
  ms: number;
}

/** hit.lua's reply: {refusing spec or 0, retry, count, blocked, known-good, hint, successes,
 *  P, P × (spec, retry, count, blocked), blocks started as (spec, count, ms)…}; spec numbers
 *  from 1 in the group. */
export function decodeHit(g: Group, r: readonly number[]): GroupReply {
  const at = (i: number) => g.indexes[i - 1]!;
  const refusalAt = (o: number): Refusal => ({ index: at(r[o]!), retryAfterMs: r[o + 1]!, count: r[o + 2]!, blocked: r[o + 3] === 1 });
  const p = r[7]!;
  const rest = r.slice(8 + 4 * p);
  return {
    refusal: r[0] !== 0 ? refusalAt(0) : undefined,
    knownGood: r[4] === 1,
    hintMatch: r[5] === 1,
    successes: r[6]!,
    provisional: Array.from({ length: p }, (_, j) => refusalAt(8 + 4 * j)),
    started: Array.from({ length: rest.length / 3 }, (_, j) => ({ index: at(rest[3 * j]!), count: rest[3 * j + 1]!, ms: rest[3 * j + 2]! })),
  };
}

/** The call values of one group's hit: which extra keys are real here, and which exemptions
 *  the attempt has in another slot. */
export function hitCall(g: Group, opts: HitOptions) {
  return {
    count: opts.count !== false,
    knownGood: g.knownGoodKey !== undefined,
    hint: g.hintKey !== undefined ? opts.hint?.value : undefined,
    successes: g.successesKey !== undefined,
    knownGoodElsewhere: opts.knownGoodKey !== undefined && g.knownGoodKey === undefined,
    hintElsewhere: opts.hint !== undefined && g.hintKey === undefined,
  };
}

/** The decision the groups' replies make together, and the groups to abort: those that
 *  counted for an attempt refused in the end. The refusal named is the one of the lowest
 *  spec index (ip rules first, as policy orders them), as one script over every spec would
 *  name it; a provisional refusal stands unless the slot holding the exemption found it. */
export function decide(specs: readonly CounterSpec[], groups: readonly Group[], replies: readonly GroupReply[], opts: HitOptions): { result: HitResult; abort: Group[] } {
  const holder = (name: keyof Extras) => replies[groups.findIndex((g) => g[name] !== undefined)];
  const knownGood = holder('knownGoodKey')?.knownGood ?? false;
  const hintMatch = holder('hintKey')?.hintMatch ?? false;
  const successes = holder('successesKey')?.successes ?? 0;
  const exempt = (i: number) => (specs[i]!.knownGoodExempt === true && knownGood) || (specs[i]!.hintExempt === true && hintMatch);
  const refusals = replies.flatMap((r) => [...(r.refusal ? [r.refusal] : []), ...r.provisional.filter((p) => !exempt(p.index))]);
  if (refusals.length === 0) {
    const blockedNow = replies.flatMap((r) => r.started.map((b) => b.index)).sort((a, b) => a - b);
    const ok: HitResult = { ok: true, knownGood, hintMatch, successes };
    return { result: blockedNow.length ? { ...ok, blockedNow } : ok, abort: [] };
  }
  const first = refusals.reduce((a, b) => (b.index < a.index ? b : a));
  const withSuccesses = opts.successesKey !== undefined && opts.count === false ? { successes } : {};
  const counted = opts.count !== false;
  return {
    result: { ok: false, ...first, ...withSuccesses },
    abort: counted ? groups.filter((g, i) => g.specs.length > 0 && !replies[i]!.refusal) : [],
  };
}

/** Whether a group is settled: it has a failures spec (a reservation to give back, a failure
 *  to count, or its count to report), a key to clear on success, or an extra key to write (a
 *  record's row included). A group of attempts specs alone has nothing to settle. */
export function settles(g: Group, failed: boolean): boolean {
  if (EXTRA_NAMES.some((name) => g[name] !== undefined)) return true;
  return g.specs.some((s) => s.kind === 'failures' || (!failed && s.resetOnSuccess));
}
