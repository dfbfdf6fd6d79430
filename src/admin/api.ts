// Admin operations on counters and blocks, as plain data: what the HTTP layer and tests call.
// User names are canonicalised like logins (identity.ts) and only ever hashed into keys.
import ipaddr from 'ipaddr.js';
import type { Membership } from '../groups/groups.js';
import { blockByHand, forgetBlocked, keyConcerns, specsForSubject } from '../limits/admin.js';
import { ATTACK_MODES, type AttackMode, type AttackModeStatus } from '../limits/attack-mode.js';
import { parseKey } from '../limits/keys.js';
import type { Policy } from '../limits/policy.js';
import { parseDuration } from '../config/duration.js';
import { checkUser } from '../protocols/identity.js';
import type { LimitStore } from '../stores/store.js';

export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
  ) {
    super(detail);
  }
}

export interface Subject {
  ip?: string;
  user?: string;
}

/** Validates query values: an IP address, and a user name as logins see it. */
export function subject(q: { ip?: string | null; user?: string | null }): Subject {
  const out: Subject = {};
  if (q.ip) {
    if (!ipaddr.isValid(q.ip)) throw new AdminError(400, 'Bad Request', 'ip: expected an IPv4 or IPv6 address');
    out.ip = q.ip;
  }
  if (q.user) {
    const u = checkUser(Buffer.from(q.user, 'utf8'));
    if (!u.ok) throw new AdminError(400, 'Bad Request', `user: ${u.reason}`);
    out.user = u.canonical;
  }
  if (!out.ip && !out.user) throw new AdminError(400, 'Bad Request', 'give ip and/or user');
  return out;
}

export async function limitsOf(policy: Policy, store: LimitStore, s: Subject, groups?: Membership) {
  return Promise.all(
    specsForSubject(policy, s, groups).map(async ({ rule, spec }) => {
      const st = await store.peek(spec.key);
      return {
        rule: rule.name,
        key: rule.key,
        count: rule.count,
        value: st.count,
        inflight: st.inflight,
        limit: rule.limit,
        remaining: Math.max(0, rule.limit - st.count),
        ttlSeconds: Math.ceil(st.ttlMs / 1000),
        blocked: st.blockedMs > 0,
        blockedSeconds: Math.ceil(st.blockedMs / 1000),
      };
    }),
  );
}

/** Resets the counters and blocks of every rule for the subject, plus blocks on ip+user keys
 *  that involve it (those cannot be derived from one side alone). Returns the rules reset. */
export async function resetSubject(policy: Policy, store: LimitStore, s: Subject, groups?: Membership): Promise<string[]> {
  const keys = new Map<string, string>();
  for (const { rule, spec } of specsForSubject(policy, s, groups)) keys.set(spec.key, rule.name);
  for (const b of await store.blocks()) if (keyConcerns(policy, b.key, s)) keys.set(b.key, parseKey(b.key)?.rule ?? '');
  await Promise.all([...keys.keys()].map((k) => store.reset(k)));
  for (const k of keys.keys()) {
    const ip = parseKey(k)?.ip;
    if (ip && !ip.includes('/')) forgetBlocked(policy, ip);
  }
  if (s.ip) forgetBlocked(policy, s.ip);
  return [...new Set(keys.values())];
}

export async function listBlocks(store: LimitStore) {
  return (await store.blocks()).map((b) => {
    const k = parseKey(b.key);
    return {
      rule: k?.rule ?? null,
      key: k?.kind ?? null,
      ip: k?.ip ?? null,
      // Users appear as keyed hashes; look one up with GET /api/v1/limits?user=NAME.
      userHash: k?.userHash ?? null,
      count: b.count,
      since: new Date(b.sinceMs).toISOString(),
      expires: new Date(Date.now() + b.remainingMs).toISOString(),
    };
  });
}

/** Longest block by hand: past it, deniedNetworks in the config is the tool. */
const MAX_HAND_BLOCK_MS = 30 * 86_400_000;

/** POST /api/v1/blocks?ip=…|user=…&for=1h[&rule=NAME]: block by hand, on the rules keyed on
 *  exactly that subject (or the one named). */
export async function blockSubject(policy: Policy, s: Subject, forValue: string | null, rule: string | null): Promise<{ blocked: string[]; seconds: number }> {
  const ms = forValue === null ? null : parseDuration(forValue);
  if (ms === null || ms <= 0 || ms > MAX_HAND_BLOCK_MS) throw new AdminError(400, 'Bad Request', 'for: expected a duration like 90s, 10m, 1h, 7d (at most 30d)');
  const blocked = await blockByHand(policy, s, ms, rule ?? undefined);
  if (blocked.length === 0) {
    const kind = s.ip && s.user ? 'ip+user' : s.ip ? 'ip' : 'user';
    throw new AdminError(409, 'Conflict', rule ? `no rule ${rule} keyed on ${kind}` : `no rule keyed on ${kind} to block on`);
  }
  return { blocked, seconds: Math.round(ms / 1000) };
}

/** DELETE /api/v1/blocks/{ip-or-user}: an IP if it parses as one, else a user name. */
export function subjectFromPath(value: string): Subject {
  return ipaddr.isValid(value) ? subject({ ip: value }) : subject({ user: value });
}

/** GET /api/v1/attack-mode: the detector's status, times as ISO strings, rates to 0.01. */
export function attackModeView(s: AttackModeStatus) {
  const r = (n: number) => Math.round(n * 100) / 100;
  return {
    active: s.active,
    forced: s.forced,
    since: s.since === null ? null : new Date(s.since).toISOString(),
    failuresPerMin: r(s.failuresPerMin),
    baselinePerMin: r(s.baselinePerMin),
    thresholdPerMin: r(s.thresholdPerMin),
    warmedUp: s.warmedUp,
    enabled: s.enabled,
  };
}

/** POST /api/v1/attack-mode?mode=on|off|auto: on and off hold until auto. */
export function forceAttackMode(detector: AttackMode, mode: string | null) {
  const m = ATTACK_MODES.find((x) => x === mode);
  if (!m) throw new AdminError(400, 'Bad Request', 'mode: expected on, off or auto');
  return attackModeView(detector.force(m));
}
