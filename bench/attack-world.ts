// The attack benchmark's world: accounts and the networks people log in from, ordinary life
// before an attack (successful logins from home and the office, a few typos, over simulated
// hours), the owners' checks after it, and how mailgate's log lines are tallied. No sockets
// here: logins go through the client process (attack-rig.ts), outcomes come from the log.
import { createHash } from 'node:crypto';
import type { DovecotUser } from '../test/helpers/dovecot.js';
import type { Attempt, ClientProcess, ClientResult, LogLine, ScenarioProxy } from './attack-rig.js';
import { NOT_REACHED } from './attack-rig.js';
import { pctOf, round } from './lib.js';

/** Network blocks, the second octet of 127.A.B.C: each network is its own /24 (127.A.B.0/24).
 *  127.0.x.x is left alone (127.0.0.1 is mailgate's own source address, which Dovecot trusts;
 *  the Dovecot helper keeps 127.0.59.x for its log barrier). */
export const BLOCKS = { home: 10, newNetwork: 14, office: 20, attack: (scenario: number) => 40 + 16 * scenario } as const;

/** The n-th network of a block (256 per second octet, so a block spans several). */
export const network = (block: number, n: number, host = 1) => `127.${block + (n >> 8)}.${n & 255}.${host}`;

export interface Account extends DovecotUser {
  index: number;
  /** The network the owner always logs in from. */
  home: string;
  /** A network the owner has never used (travelling). */
  away: string;
}

export interface World {
  accounts: Account[];
  /** Accounts attacks aim at, [0, targets). */
  targets: Account[];
  /** Behind the office NAT (one address). */
  colleagues: Account[];
  /** Whose logins measure latency. */
  trickle: Account[];
  office: string;
}

export interface WorldSizes {
  targets: number;
  colleagues: number;
  trickle: number;
}

export function makeWorld(s: WorldSizes): World {
  const n = s.targets + s.colleagues + s.trickle;
  const accounts = Array.from({ length: n }, (_, i) => ({
    index: i,
    user: `user${String(i).padStart(3, '0')}`,
    // Unguessable, like a real password: no common-password list holds it.
    pass: `${createHash('sha256').update(`mailgate-bench-${i}`).digest('base64url').slice(0, 14)}`,
    home: network(BLOCKS.home, i),
    away: network(BLOCKS.newNetwork, i),
  }));
  return {
    accounts,
    targets: accounts.slice(0, s.targets),
    colleagues: accounts.slice(s.targets, s.targets + s.colleagues),
    trickle: accounts.slice(s.targets + s.colleagues),
    office: network(BLOCKS.office, 0),
  };
}

/** Passwords attackers try first (spraying, the infected machine). None is any account's. */
export const COMMON_PASSWORDS = ['123456', 'Password1', 'Summer2024!', 'qwerty123', 'Welcome1', 'letmein', 'iloveyou', 'Passw0rd!'];

export interface Ctx {
  world: World;
  proxy: ScenarioProxy;
  /** Attackers, ordinary life and owners. */
  clients: ClientProcess;
  log: (s: string) => void;
}

/** Colleagues behind the office address log in a few at a time (mail clients starting up
 *  over the morning), not all in the same instant. */
export const OFFICE_CONCURRENCY = 3;

/** Where each account logs in from in ordinary life. */
export const usualSource = (w: World, a: Account) => (w.colleagues.includes(a) ? w.office : a.home);
export const login = (w: World, a: Account): Attempt => ({ source: usualSource(w, a), user: a.user, pass: a.pass });
/** A typo: the right password with its last character doubled. */
export const typo = (w: World, a: Account): Attempt => ({ ...login(w, a), pass: `${a.pass}${a.pass.slice(-1)}` });

/** Ordinary life: in each batch half of everyone logs in from where they usually do, a few
 *  after a typo; the clock jumps stepMin between batches, so a defence that learns a baseline
 *  (known networks, failure rates, shared addresses) has simulated hours of it. */
export async function ordinaryLife(ctx: Ctx, o: { batches: number; stepMin: number; typoEvery: number; concurrency: number }) {
  const w = ctx.world;
  const outcomes: string[] = [];
  let typos = 0;
  for (let b = 0; b < o.batches; b++) {
    if (b > 0) ctx.proxy.advance(o.stepMin * 60_000);
    const who = w.accounts.filter((a) => (a.index + b) % 2 === 0);
    const slips = who.filter((_, i) => i % o.typoEvery === o.typoEvery - 1);
    typos += slips.length;
    const from = ctx.proxy.lines.length;
    const rest = who.filter((a) => !slips.includes(a));
    const home = rest.filter((a) => !w.colleagues.includes(a)).map((a) => login(w, a));
    const office = rest.filter((a) => w.colleagues.includes(a)).map((a) => login(w, a));
    // Whoever slips types the password again at once; everyone else meanwhile.
    const [atHome, atOffice, retries] = await Promise.all([
      ctx.clients.batch(ctx.proxy.target, home, o.concurrency),
      ctx.clients.batch(ctx.proxy.target, office, OFFICE_CONCURRENCY),
      Promise.all(slips.map((a) => ctx.clients.batch(ctx.proxy.target, [typo(w, a), login(w, a)], 1))),
    ]);
    outcomes.push(...judge(ctx.proxy.lines, from, home, atHome), ...judge(ctx.proxy.lines, from, office, atOffice));
    slips.forEach((a, i) => outcomes.push(judge(ctx.proxy.lines, from, [typo(w, a), login(w, a)], retries[i]!)[1]!));
  }
  return { logins: tally(outcomes), typos, simulatedMin: (o.batches - 1) * o.stepMin };
}

/** What mailgate made of each attempt: its auth.attempt outcome for that (ip, user) after log
 *  line `from`; `refused-at-connect` when no LOGIN was sent; else what the client saw. */
export function judge(lines: LogLine[], from: number, attempts: Attempt[], results: ClientResult[]): string[] {
  const byPair = new Map<string, string[]>();
  for (const l of lines.slice(from)) {
    if (l.event !== 'auth.attempt') continue;
    const k = `${l.ip}|${l.user}`;
    byPair.set(k, [...(byPair.get(k) ?? []), l.outcome === 'limited' ? `limited by ${l.rule}` : (l.outcome ?? '?')]);
  }
  return attempts.map((a, i) => {
    const r = results[i]!;
    if (!r.loginSent) return 'refused-at-connect';
    return byPair.get(`${a.source}|${a.user}`)?.shift() ?? `client-${r.outcome}`;
  });
}

export interface Tally {
  ok: number;
  of: number;
  outcomes: Record<string, number>;
  /** How long the successful logins took as the client saw them (when timed). */
  okMs?: { p50: number | null; max: number | null };
}

/** `results` (the client's view, same order as `outcomes`) adds the successful logins' times. */
export function tally(outcomes: string[], results?: ClientResult[]): Tally {
  const t: Tally = { ok: 0, of: outcomes.length, outcomes: {} };
  const ms: number[] = [];
  for (const [i, o] of outcomes.entries()) {
    t.outcomes[o] = (t.outcomes[o] ?? 0) + 1;
    if (o === 'ok') {
      t.ok++;
      if (results?.[i]) ms.push(results[i]!.ms);
    }
  }
  if (results) {
    ms.sort((a, b) => a - b);
    t.okMs = { p50: round(pctOf(ms, 50), 1), max: ms.length ? round(ms.at(-1)!, 1) : null };
  }
  return t;
}

/** Right-password logins that must succeed, judged one by one. */
export async function judgedLogins(ctx: Ctx, attempts: Attempt[], concurrency = 10): Promise<Tally> {
  const from = ctx.proxy.lines.length;
  const results = await ctx.clients.batch(ctx.proxy.target, attempts, concurrency);
  return tally(judge(ctx.proxy.lines, from, attempts, results), results);
}

/** After an attack: each owner logs in from home, then from a network never used before. */
export async function ownerChecks(ctx: Ctx, owners: Account[]) {
  const home = await judgedLogins(ctx, owners.map((a) => login(ctx.world, a)));
  const away = await judgedLogins(ctx, owners.map((a) => ({ source: a.away, user: a.user, pass: a.pass })));
  return { home, newNetwork: away };
}

/** The attacker's side, from mailgate's log lines after `from` that `isAttack` picks: how many
 *  reached the backend (outcome not limited/invalid), by outcome and refusing rule, the
 *  accounts it got into. */
export function attackTally(lines: LogLine[], from: number, isAttack: (l: LogLine) => boolean, results: ClientResult[]) {
  const mine = lines.slice(from).filter((l) => l.event === 'auth.attempt' && isAttack(l));
  const outcomes: Record<string, number> = {};
  const refusedBy: Record<string, number> = {};
  for (const l of mine) {
    outcomes[l.outcome ?? '?'] = (outcomes[l.outcome ?? '?'] ?? 0) + 1;
    if (l.outcome === 'limited') refusedBy[l.rule ?? '?'] = (refusedBy[l.rule ?? '?'] ?? 0) + 1;
  }
  const reached = mine.filter((l) => !NOT_REACHED.has(l.outcome ?? ''));
  const entered = [...new Set(mine.filter((l) => l.outcome === 'ok' || l.outcome === 'locked').map((l) => l.user!))];
  return {
    attempts: results.length,
    refusedAtConnect: results.filter((r) => !r.loginSent).length,
    logged: mine.length,
    reached: reached.length,
    reachedPct: results.length ? round((reached.length / results.length) * 100, 1) : null,
    outcomes,
    refusedBy,
    accountsEntered: entered.length,
    reachedLines: reached,
  };
}

/** Latency of the trickle's successful logins (connect, TLS, LOGIN answered), and how many failed. */
export function latency(results: ClientResult[]) {
  const ms = results.filter((r) => r.outcome === 'ok').map((r) => r.ms).sort((a, b) => a - b);
  const failed = tally(results.filter((r) => r.outcome !== 'ok').map((r) => r.outcome)).outcomes;
  const worst = results.filter((r) => r.outcome === 'ok').sort((a, b) => b.ms - a.ms).slice(0, 5).map((r) => ({ ms: r.ms, at: r.at ?? null }));
  return { logins: results.length, ok: ms.length, failed, p50ms: round(pctOf(ms, 50), 1), p99ms: round(pctOf(ms, 99), 1), worst };
}
