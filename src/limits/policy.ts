// The limit rules: which apply to an attempt, in what order, and what the store says.
// Protocol-blind: sees only {protocol, ip, user} and, to hash it with the key and forget it,
// the password. A Decision is data, never an exception. Who is exempt from what (known-good
// pairs, password hints) and attack mode are decided here; the store applies it atomically.
import type { Clock } from '../clock.js';
import { cidrMatcher } from '../config/address.js';
import type { LimitsConfig, ProtocolName, RuleConfig } from '../config/schema.js';
import type { CounterSpec, HitOptions, LimitStore, RecordRow, StoreRoute } from '../stores/store.js';
import { BlockHints } from './block-hints.js';
import { clientKey, KeyBuilder } from './keys.js';
import { tarpitDelayMs } from './tarpit.js';
import type { Membership } from '../groups/groups.js';

export interface Attempt {
  /** 'other': a service no rule names (a Dovecot policy request for sieve). */
  protocol: ProtocolName | 'other';
  /** Socket address of the client (any form). */
  ip: string;
  /** Canonical user name (identity.ts). */
  user: string;
  /** The password tried: only ever hashed with the key (hint, spray, dedupe), never copied;
   *  held by the decision until record() (a failure's dedupe fingerprint). */
  password?: Buffer;
  /** false: the password is a per-user hash (Dovecot's pwhash), useless to spray rules. */
  sprayable?: boolean;
  /** The client's address groups (groups/groups.ts): rules' only/except, a together key. */
  groups?: Membership;
}

/** The counter key of a `together` group: every address in it is this one client. */
export const groupClient = (name: string) => `grp:${name}`;

/** Whether a rule applies to a client of these groups: `only` needs one of its groups;
 *  `except` skips clients in one of its groups, and clients an ASN/country group cannot place
 *  (a private or unknown address is never "foreign"). */
export function appliesTo(rule: RuleConfig, m: Membership | undefined): boolean {
  const names = m?.names ?? [];
  if (rule.only) return rule.only.some((g) => names.includes(g));
  if (rule.except) return !rule.except.some((g) => names.includes(g) || m?.unplaced?.includes(g));
  return true;
}

/** A rule with its counter spec for one client and user. */
export interface RuleSpec {
  rule: RuleConfig;
  spec: CounterSpec;
}

/** What record() needs to settle an allowed attempt. */
interface Settlement {
  pairs: readonly RuleSpec[];
  /** Client key (ipv6Prefix grouping) and canonical user of the attempt. */
  client: string;
  /** What ip rules count it as: the client key, or its together group's. */
  ipKey: string;
  user: string;
  knownGoodKey?: string;
  /** The attempt's hint: becomes the account's if the login succeeds. */
  hint?: { key: string; value: string };
  /** The attempt's password where a dedupe rule applies: record() hashes it into the
   *  stale-password fingerprint on a failure only, so a success costs no HMAC (issue 22). The
   *  caller's buffer, never a copy: the auth path wipes it after record(), never before. */
  password?: Buffer;
  route?: StoreRoute;
  /** hit reserved failures (false when a refusal was let through in dry-run). */
  reserved: boolean;
}

export type Decision =
  | {
      kind: 'allow';
      specs: readonly CounterSpec[];
      trusted: boolean;
      /** The pair (user, network) logged in successfully before (knownGood). */
      knownGood: boolean;
      /** The password matched the account's hint (passwordHint). */
      hintMatch?: boolean;
      /** Several users log in from this address (limits.sharedEgress.users). */
      shared?: boolean;
      /** dry-run: the refusal that was not enforced. */
      wouldRefuse?: { rule: string; count: number; blocked: boolean; retryAfterSec: number };
      settlement?: Settlement;
    }
  | { kind: 'refuse'; rule: string; retryAfterSec: number; count: number; blocked: boolean };

export type Outcome = 'ok' | 'fail' | 'unavailable';

const KEY_ORDER: Record<RuleConfig['key'], number> = { ip: 0, 'ip+user': 1, user: 2, password: 3 };

/** Seconds to tell a refused client, rounded up and at least 1: never "retry in 0 s". */
const retrySec = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** Attack mode as a rule: it refuses every attempt that is neither a known-good pair nor a
 *  hint match (limit 0), counts nothing, and tells the client to come back in a minute. */
const ATTACK_MODE_RULE: RuleConfig = { name: 'attack-mode', key: 'user', count: 'attempts', limit: 0, window: 60_000, blockMemory: 0 } as RuleConfig;
const ATTACK_MODE_RETRY_SEC = 60;

export class Policy {
  /** Rules in check order: IP rules before user rules, otherwise in file order. */
  readonly rules: readonly RuleConfig[];
  /** Client keys seen blocked by an ip rule: the only ones connectCheck asks the store about. */
  readonly hints: BlockHints;
  /** Client keys seen shared (sharedEgress.users logged in from them), as the last hit said. */
  private readonly shared: BlockHints;
  private readonly trusted: (address: string) => boolean;
  private readonly sprayRules: boolean;
  /** Some logins pass blocks (known-good pairs, hint matches): then an address someone logged
   *  in from lately is never turned away at connect (nor pushed to a firewall). */
  readonly exemptions: boolean;

  constructor(
    private readonly cfg: LimitsConfig,
    readonly store: LimitStore,
    readonly keys: KeyBuilder,
    clock: Clock,
    /** Whether attack mode is on now (limits/attack-mode.ts); read at every check. */
    private readonly attackMode: () => boolean = () => false,
    /** Connect-time hints: this policy's own, or (worker mode) ones shared by every process. */
    hints?: BlockHints,
  ) {
    // Stable sort: rules of one key kind keep their file order.
    this.rules = [...cfg.rules].sort((a, b) => KEY_ORDER[a.key] - KEY_ORDER[b.key]);
    this.hints = hints ?? new BlockHints(clock);
    this.shared = new BlockHints(clock);
    // Load balancers that send PROXY headers are never throttled either: their own health
    // checks (LOCAL headers) come from their address.
    this.trusted = cidrMatcher([...cfg.trustedNetworks, ...cfg.trustedProxies]);
    this.sprayRules = cfg.rules.some((r) => r.key === 'password');
    this.exemptions = cfg.knownGood !== undefined || cfg.passwordHint !== undefined;
  }

  get dryRun(): boolean {
    return this.cfg.mode === 'dry-run';
  }

  isTrusted(address: string): boolean {
    return this.trusted(address);
  }

  /** The client key of a socket address: IPv6 grouped by ipv6Prefix. */
  clientOf(ip: string): string {
    return clientKey(ip, this.cfg.ipv6Prefix);
  }

  /** The key a rule counts this address under: its prefix's network for a wide rule (null
   *  when the prefix names the other family only), else the client key. */
  ruleClient(rule: RuleConfig, ip: string, together?: string): string | null {
    if (!rule.prefix) return together !== undefined ? groupClient(together) : this.clientOf(ip);
    const v6 = ip.includes(':') && !/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip);
    const bits = v6 ? rule.prefix.ipv6 : rule.prefix.ipv4;
    if (bits === undefined) return null;
    return together !== undefined ? groupClient(together) : clientKey(ip, bits, bits);
  }

  /** A rule with its counter spec for one address, canonical user and sprayed password key.
   *  `shared`: the address is shared, where a (user, network) pair says nothing of the device. */
  ruleSpec(rule: RuleConfig, client: string, user: string, password = '', shared = false): RuleSpec {
    const { knownGood, passwordHint } = this.cfg;
    return {
      rule,
      spec: {
        key: this.keys.ruleKey(rule, client, user, password),
        kind: rule.count,
        limit: rule.limit,
        windowMs: rule.window,
        blockMs: rule.block ?? null,
        distinct: rule.distinct !== undefined,
        // A pair that logged in before never meets a block meant for strangers; a pair is
        // guessed at only by its own ip+user rules. Behind a shared address every colleague has
        // a pair for every account there, so its ip rules let only hint matches through.
        knownGoodExempt: knownGood !== undefined && rule.key !== 'ip+user' && !(shared && rule.key === 'ip'),
        // The owner with the right password (the last one that succeeded) always gets through.
        hintExempt: passwordHint !== undefined,
        resetOnSuccess: rule.prefix !== undefined,
        // Many users behind one address log in at once: their logins in flight are not
        // failures in the making (a rule on one address's failures still bounds a sprayer).
        unreserved: rule.key === 'ip' && rule.distinct === 'user',
        dedupe: rule.count === 'failures' && !rule.distinct && this.cfg.dedupeFailures,
        blockGrowth: rule.blockGrowth,
        blockMemoryMs: rule.blockMemory,
        blockMaxMs: rule.blockMax,
      },
    };
  }

  /** `password`: the sprayed password's key, or how to make it: asked only when a password
   *  rule applies to the attempt (an HMAC, issue 22), at most once. */
  specsFor(a: Attempt, password: string | (() => string) = '', shared = false): RuleSpec[] {
    const out: RuleSpec[] = [];
    for (const rule of this.rules) {
      if (rule.protocols && !rule.protocols.includes(a.protocol as ProtocolName)) continue;
      if (!appliesTo(rule, a.groups)) continue;
      let sprayed = '';
      if (rule.key === 'password') {
        if (typeof password !== 'string') password = password();
        if (!password) continue;
        sprayed = password;
      }
      const client = this.ruleClient(rule, a.ip, a.groups?.together);
      if (client !== null) out.push(this.ruleSpec(rule, client, a.user, sprayed, shared));
    }
    return out;
  }

  /** At connect: is the client IP blocked by an ip rule (a rule with `block` whose block is
   *  running)? Only IPs this process saw blocked are checked with the store (a hint, so
   *  ordinary logins keep their two store round trips); the store has the last word. With
   *  known-good pairs or hints on, an address someone logged in from lately is never refused
   *  here: its login decides (known-good pairs and hint matches pass its blocks, everyone else
   *  is refused there). Trusted networks and dry-run are never refused. */
  async connectCheck(protocol: ProtocolName, ip: string, groups?: Membership): Promise<{ rule: string; retryAfterSec: number } | null> {
    if (this.dryRun || this.isTrusted(ip)) return null;
    const client = this.clientOf(ip);
    // A together group is one client: its block is noted (and asked about) under its key.
    const key = groups?.together !== undefined ? groupClient(groups.together) : client;
    if (!this.hints.has(key)) return null;
    const pairs = this.rules
      // Any ip rule: an operator may block on one without `block` (blockByHand).
      .filter((r) => r.key === 'ip' && !r.prefix && (!r.protocols || r.protocols.includes(protocol)) && appliesTo(r, groups))
      .map((rule) => this.ruleSpec(rule, key, ''));
    if (pairs.length === 0) return null;
    // The address's successes come with the answer (same subject, same store call).
    const successesKey = this.exemptions ? this.keys.successesKey(client) : undefined;
    const r = await this.store.hit(pairs.map((p) => p.spec), { count: false, successesKey });
    const successes = async () => (r.ok ? 0 : (r.successes ?? (await this.store.peek(successesKey!)).count));
    if (r.ok || !r.blocked || (successesKey !== undefined && (await successes()) > 0)) {
      this.hints.forget(key);
      return null;
    }
    return { rule: pairs[r.index]!.rule.name, retryAfterSec: retrySec(r.retryAfterMs) };
  }

  async check(a: Attempt): Promise<Decision> {
    if (this.isTrusted(a.ip)) return { kind: 'allow', specs: [], trusted: true, knownGood: false };
    const client = this.clientOf(a.ip);
    const { knownGood: kg, passwordHint: ph } = this.cfg;
    const tried = a.password;
    const password = tried && this.sprayRules && a.sprayable !== false ? () => this.keys.passwordKey(tried) : '';
    const pairs = this.specsFor(a, password, this.shared.has(client));
    if (this.attackMode()) pairs.unshift(this.ruleSpec(ATTACK_MODE_RULE, client, a.user));
    const specs = pairs.map((p) => p.spec);
    const ipKey = a.groups?.together !== undefined ? groupClient(a.groups.together) : client;
    const base: Omit<Settlement, 'reserved'> = {
      pairs,
      client,
      ipKey,
      user: a.user,
      knownGoodKey: kg ? this.keys.knownGoodKey(clientKey(a.ip, this.cfg.ipv6Prefix, kg.ipv4Prefix), a.user) : undefined,
      hint: ph && a.password ? { key: this.keys.hintKey(a.user), value: this.keys.passwordHint(a.user, a.password, ph.bits) } : undefined,
      password: a.password && specs.some((s) => s.dedupe) ? a.password : undefined,
    };
    const opts: HitOptions = { knownGoodKey: base.knownGoodKey, hint: base.hint, successesKey: this.keys.successesKey(client) };
    const r = await this.store.hit(specs, opts);
    if (r.ok) {
      for (const i of r.blockedNow ?? []) if (pairs[i]!.rule.key === 'ip' && !pairs[i]!.rule.prefix) this.hints.note(ipKey, pairs[i]!.rule.block ?? 0);
      const shared = (r.successes ?? 0) >= this.cfg.sharedEgress.users;
      if (shared) this.shared.note(client, this.cfg.sharedEgress.window);
      else this.shared.forget(client);
      return { kind: 'allow', specs, trusted: false, knownGood: r.knownGood ?? false, hintMatch: r.hintMatch, shared, settlement: { ...base, reserved: true, route: r.route } };
    }
    const rule = pairs[r.index]!.rule;
    const retryAfterSec = rule === ATTACK_MODE_RULE ? ATTACK_MODE_RETRY_SEC : retrySec(r.retryAfterMs);
    const refusal = { rule: rule.name, retryAfterSec, count: r.count, blocked: r.blocked };
    if (r.blocked && rule.key === 'ip' && !rule.prefix) this.hints.note(ipKey, r.retryAfterMs);
    if (this.dryRun) {
      // Nothing was counted or reserved by the refused hit; record() still counts the outcome.
      return { kind: 'allow', specs, trusted: false, knownGood: false, wouldRefuse: refusal, settlement: { ...base, reserved: false } };
    }
    return { kind: 'refuse', ...refusal };
  }

  /** Settle what check reserved and count the outcome. A backend that could not be reached
   *  is not the user's failure. A success remembers the pair, the hint and the address's user.
   *  `row`: the login's history row (AccountHistory.row), for the store to write with the
   *  settle of a verdict (it marks the row written if it did). Returns the tarpit delay for a
   *  failure (0 otherwise). */
  async record(decision: Decision, outcome: Outcome, row?: RecordRow): Promise<number> {
    const st = decision.kind === 'allow' ? decision.settlement : undefined;
    if (!st || outcome === 'unavailable') {
      // Reservations still go back: nothing was learnt about the credentials.
      if (st && outcome === 'unavailable' && st.pairs.some((p) => p.rule.count === 'failures')) {
        // Not a success either: no rule narrows back.
        await this.store.settle(st.pairs.map((p) => ({ ...p.spec, resetOnSuccess: false })), { failed: false, reserved: st.reserved, countsUnread: true }, st.route);
      }
      return 0;
    }
    const ok = outcome === 'ok';
    const { knownGood: kg, passwordHint: ph, sharedEgress } = this.cfg;
    const user = this.keys.userHash(st.user);
    const counts = await this.store.settle(
      st.pairs.map((p) => p.spec),
      {
        failed: !ok,
        reserved: st.reserved,
        fingerprint: ok || !st.password ? undefined : this.keys.fingerprint(st.client, st.user, st.password),
        members: st.pairs.map((p) => (p.rule.distinct === 'ip' ? st.client : p.rule.distinct === 'user' ? user : null)),
        knownGood: ok && kg && st.knownGoodKey ? { key: st.knownGoodKey, ttlMs: kg.ttl } : undefined,
        hint: ok && ph && st.hint ? { ...st.hint, ttlMs: ph.ttl } : undefined,
        success: ok ? { key: this.keys.successesKey(st.client), member: user, ttlMs: sharedEgress.window } : undefined,
        countsUnread: ok || undefined,
        record: row,
      },
      st.route,
    );
    if (ok) return 0;
    st.pairs.forEach((p, i) => {
      if (p.rule.key === 'ip' && !p.rule.prefix && p.rule.block !== undefined && (counts[i] ?? 0) >= p.rule.limit) this.hints.note(st.ipKey, p.rule.block);
    });
    return Math.max(0, ...st.pairs.map((p, i) => (p.rule.delay && p.rule.count === 'failures' ? tarpitDelayMs(p.rule.delay, counts[i] ?? 0) : 0)));
  }
}
