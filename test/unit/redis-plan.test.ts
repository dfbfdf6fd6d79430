// How the Redis store splits an attempt over Cluster slots and merges the answers
// (stores/redis-plan.ts): groups by subject, replies mapped back to the attempt's spec
// indexes, exemptions read in the user's slot deciding provisional refusals elsewhere, the
// lowest index named, and which groups are aborted; on one server, one group for everything.
// Pure: replies are written by hand in hit.lua's layout.
import { describe, expect, it } from 'vitest';
import { KeyBuilder } from '../../src/limits/keys.js';
import { decide, decodeHit, hitCall, ONE_SERVER, planGroups, settles, type Group } from '../../src/stores/redis-plan.js';
import type { CounterSpec, HitOptions } from '../../src/stores/store.js';

const keys = new KeyBuilder('plan-secret-0123456789');
const ip = '192.0.2.9';
const spec = (name: string, key: 'ip' | 'user' | 'ip+user' | 'password', over: Partial<CounterSpec> = {}): CounterSpec => ({
  key: keys.ruleKey({ name, key }, key === 'ip' && name.startsWith('net') ? '192.0.2.0/24' : ip, 'alice', 'pwkey'),
  kind: 'attempts',
  limit: 5,
  windowMs: 60_000,
  blockMs: null,
  ...over,
});
// Policy's order: ip rules, ip+user, user, password.
const specs = [
  spec('ip-logins', 'ip', { knownGoodExempt: true }),
  spec('net-failures', 'ip', { kind: 'failures', knownGoodExempt: true }),
  spec('pair-failures', 'ip+user', { kind: 'failures' }),
  spec('user-logins', 'user', { knownGoodExempt: true }),
  spec('spray', 'password', { kind: 'failures', distinct: true, hintExempt: true }),
];
const opts: HitOptions = { knownGoodKey: keys.knownGoodKey('192.0.2.0/24', 'alice'), hint: { key: keys.hintKey('alice'), value: 'abc' }, successesKey: keys.successesKey(ip) };
const extras = { knownGoodKey: opts.knownGoodKey, hintKey: opts.hint!.key, successesKey: opts.successesKey };

/** hit.lua's reply for a group. */
const reply = (r: { refused?: [number, number, number, 0 | 1]; kg?: 0 | 1; hint?: 0 | 1; successes?: number; provisional?: [number, number, number, 0 | 1][]; started?: [number, number, number][] } = {}) => [
  ...(r.refused ?? [0, 0, 0, 0]),
  r.kg ?? 0,
  r.hint ?? 0,
  r.successes ?? 0,
  (r.provisional ?? []).length,
  ...(r.provisional ?? []).flat(),
  ...(r.started ?? []).flat(),
];

describe('planGroups', () => {
  it('one group per subject in the order of its first spec, each with the extra keys of its slot', () => {
    const groups = planGroups(specs, extras);
    expect(groups.map((g) => [g.tag[1], g.indexes])).toEqual([
      ['i', [0]],
      ['i', [1]],
      ['u', [2, 3]],
      ['p', [4]],
    ]);
    expect(groups[0]).toMatchObject({ successesKey: opts.successesKey });
    expect(groups[0]!.knownGoodKey).toBeUndefined();
    expect(groups[2]).toMatchObject({ knownGoodKey: opts.knownGoodKey, hintKey: opts.hint!.key });
    expect(groups[2]!.successesKey).toBeUndefined();
  });

  it('extra keys whose slot has no spec get a group of their own, last', () => {
    const groups = planGroups([specs[0]!], extras);
    expect(groups).toHaveLength(2);
    expect(groups[1]).toMatchObject({ specs: [], indexes: [], knownGoodKey: opts.knownGoodKey, hintKey: opts.hint!.key });
  });

  it("the history row's record goes to the user's group, which then settles", () => {
    const groups = planGroups([specs[0]!, specs[3]!], { recordKey: keys.historyKey('alice') });
    expect(groups.map((g) => [g.tag[1], g.indexes, g.recordKey])).toEqual([
      ['i', [0], undefined],
      ['u', [1], keys.historyKey('alice')],
    ]);
    expect(settles(groups[1]!, false)).toBe(true);
  });

  it('one server (ONE_SERVER): every spec and extra key in one group, which reads every exemption itself', () => {
    const groups = planGroups(specs, { ...extras, recordKey: keys.historyKey('alice') }, ONE_SERVER);
    expect(groups).toHaveLength(1);
    expect(groups[0]).toMatchObject({ indexes: [0, 1, 2, 3, 4], ...extras, recordKey: keys.historyKey('alice') });
    expect(hitCall(groups[0]!, opts)).toEqual({ count: true, knownGood: true, hint: 'abc', successes: true, knownGoodElsewhere: false, hintElsewhere: false });
    // A refusal there counted nothing anywhere: nothing to abort.
    expect(decide(specs, groups, [decodeHit(groups[0]!, reply({ refused: [4, 1000, 5, 0] }))], opts)).toEqual({ result: { ok: false, index: 3, retryAfterMs: 1000, count: 5, blocked: false }, abort: [] });
    expect(decide(specs, groups, [decodeHit(groups[0]!, reply({ kg: 1, successes: 2, started: [[3, 5, 1000]] }))], opts).result).toEqual({ ok: true, knownGood: true, hintMatch: false, successes: 2, blockedNow: [2] });
  });

  it('tells each group which exemptions it reads and which live elsewhere', () => {
    const [ipGroup, , userGroup] = planGroups(specs, extras) as [Group, Group, Group];
    expect(hitCall(ipGroup, opts)).toEqual({ count: true, knownGood: false, hint: undefined, successes: true, knownGoodElsewhere: true, hintElsewhere: true });
    expect(hitCall(userGroup, { ...opts, count: false })).toEqual({ count: false, knownGood: true, hint: 'abc', successes: false, knownGoodElsewhere: false, hintElsewhere: false });
  });

  it('settles a group only when it has something to write or a failures count to report', () => {
    const [ipGroup, netGroup, userGroup] = planGroups(specs, {}) as [Group, Group, Group];
    expect(settles(ipGroup, true)).toBe(false);
    expect(settles(netGroup, false)).toBe(true);
    expect(settles(userGroup, false)).toBe(true);
    expect(settles({ ...ipGroup, specs: [{ ...specs[0]!, resetOnSuccess: true }] }, false)).toBe(true);
    expect(settles({ ...ipGroup, successesKey: 'se:x' }, true)).toBe(true);
  });
});

describe('decide', () => {
  const groups = planGroups(specs, extras);
  const replies = (per: Parameters<typeof reply>[0][]) => per.map((r, i) => decodeHit(groups[i]!, reply(r)));

  it('all groups allow: allowed, with the exemptions, successes and blocks started mapped to the attempt', () => {
    const { result, abort } = decide(specs, groups, replies([{ successes: 3, started: [[1, 5, 60_000]] }, {}, { kg: 1, started: [[2, 5, 1000]] }, {}]), opts);
    expect(result).toEqual({ ok: true, knownGood: true, hintMatch: false, successes: 3, blockedNow: [0, 3] });
    expect(abort).toEqual([]);
  });

  it('one subject refuses: that refusal, at its index in the attempt; the groups that counted are aborted', () => {
    const { result, abort } = decide(specs, groups, replies([{}, {}, { refused: [2, 30_000, 5, 1] }, {}]), opts);
    expect(result).toEqual({ ok: false, index: 3, retryAfterMs: 30_000, count: 5, blocked: true });
    expect(abort.map((g) => g.indexes)).toEqual([[0], [1], [4]]);
  });

  it('several refuse: the lowest index is named, as one script over every spec would', () => {
    const { result } = decide(specs, groups, replies([{}, { refused: [1, 1000, 4, 0] }, { refused: [1, 9000, 5, 1] }, {}]), opts);
    expect(result).toMatchObject({ ok: false, index: 1, retryAfterMs: 1000 });
  });

  it('a provisional refusal stands unless the user\'s slot found the exemption', () => {
    const ipBlocked = { provisional: [[1, 60_000, 7, 1]] as [number, number, number, 0 | 1][] };
    const exempt = decide(specs, groups, replies([ipBlocked, {}, { kg: 1 }, {}]), opts);
    expect(exempt.result).toMatchObject({ ok: true, knownGood: true });
    expect(exempt.abort).toEqual([]);
    const stranger = decide(specs, groups, replies([ipBlocked, {}, { kg: 0 }, {}]), opts);
    expect(stranger.result).toEqual({ ok: false, index: 0, retryAfterMs: 60_000, count: 7, blocked: true });
    expect(stranger.abort).toHaveLength(4); // every group counted, the refused spec's too
    // The spray rule is hint-exempt only: the hint, not the pair, lets it pass.
    const spray = { provisional: [[1, 5000, 9, 1]] as [number, number, number, 0 | 1][] };
    expect(decide(specs, groups, replies([{}, {}, { kg: 1 }, spray]), opts).result).toMatchObject({ ok: false, index: 4 });
    expect(decide(specs, groups, replies([{}, {}, { hint: 1 }, spray]), opts).result).toMatchObject({ ok: true, hintMatch: true });
  });

  it('a provisional refusal below a real one is named first when not exempt', () => {
    const { result } = decide(specs, groups, replies([{ provisional: [[1, 60_000, 7, 1]] }, {}, { refused: [2, 1000, 5, 0] }, {}]), opts);
    expect(result).toMatchObject({ ok: false, index: 0 });
  });

  it('a check-only hit aborts nothing and reports the successes with its refusal', () => {
    const { result, abort } = decide(specs, groups, replies([{ refused: [1, 60_000, 7, 1], successes: 2 }, {}, {}, {}]), { ...opts, count: false });
    expect(result).toEqual({ ok: false, index: 0, retryAfterMs: 60_000, count: 7, blocked: true, successes: 2 });
    expect(abort).toEqual([]);
  });
});
