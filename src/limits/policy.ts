// The limit rules: which apply to an attempt, in what order, and what the store says.
// Protocol-blind: sees only {protocol, ip, user}. A Decision is data, never an exception.
import type { Clock } from '../clock.js';
import { cidrMatcher } from '../config/address.js';
import type { LimitsConfig, ProtocolName, RuleConfig } from '../config/schema.js';
import type { CounterSpec, LimitStore, StoreRoute } from '../stores/store.js';
import { BlockHints } from './block-hints.js';
import { clientKey, KeyBuilder } from './keys.js';
import { tarpitDelayMs } from './tarpit.js';

export interface Attempt {
  protocol: ProtocolName;
  /** Socket address of the client (any form). */
  ip: string;
  /** Canonical user name (identity.ts). */
  user: string;
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
  user: string;
  knownGoodKey?: string;
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
      /** dry-run: the refusal that was not enforced. */
      wouldRefuse?: { rule: string; count: number; blocked: boolean; retryAfterSec: number };
      settlement?: Settlement;
    }
  | { kind: 'refuse'; rule: string; retryAfterSec: number; count: number; blocked: boolean };

export type Outcome = 'ok' | 'fail' | 'unavailable';

const KEY_ORDER: Record<RuleConfig['key'], number> = { ip: 0, 'ip+user': 1, user: 2, password: 3 };

/** Seconds to tell a refused client, rounded up and at least 1: never "retry in 0 s". */
const retrySec = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export class Policy {
  /** Rules in check order: IP rules before user rules, otherwise in file order. */
  readonly rules: readonly RuleConfig[];
  /** Client keys seen blocked by an ip rule: the only ones connectCheck asks the store about. */
  readonly hints: BlockHints;
  private readonly trusted: (address: string) => boolean;

  constructor(
    private readonly cfg: LimitsConfig,
    readonly store: LimitStore,
    readonly keys: KeyBuilder,
    clock: Clock,
  ) {
    // Stable sort: rules of one key kind keep their file order.
    this.rules = [...cfg.rules].sort((a, b) => KEY_ORDER[a.key] - KEY_ORDER[b.key]);
    this.hints = new BlockHints(clock);
    this.trusted = cidrMatcher(cfg.trustedNetworks);
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

  /** A rule with its counter spec for one client key and canonical user. */
  ruleSpec(rule: RuleConfig, client: string, user: string): RuleSpec {
    return {
      rule,
      spec: {
        key: this.keys.ruleKey(rule, client, user),
        kind: rule.count,
        limit: rule.limit,
        windowMs: rule.window,
        blockMs: rule.block ?? null,
        distinct: rule.distinct !== undefined,
        knownGoodExempt: rule.key === 'user' && this.cfg.knownGood !== undefined,
        dedupe: rule.count === 'failures' && !rule.distinct && this.cfg.dedupeFailures,
        blockGrowth: rule.blockGrowth,
        blockMemoryMs: rule.blockMemory,
        blockMaxMs: rule.blockMax,
      },
    };
  }

  specsFor(a: Attempt): RuleSpec[] {
    const client = this.clientOf(a.ip);
    return this.rules
      .filter((r) => !r.protocols || r.protocols.includes(a.protocol))
      .map((rule) => this.ruleSpec(rule, client, a.user));
  }

  /** At connect: is the client IP blocked by an ip rule (a rule with `block` whose block is
   *  running)? Only IPs this process saw blocked are checked with the store (a hint, so
   *  ordinary logins keep their two store round trips); the store has the last word. A key
   *  merely at its window limit is refused at login instead, with the login's own reply.
   *  Trusted networks and dry-run are never refused. */
  async connectCheck(protocol: ProtocolName, ip: string): Promise<{ rule: string; retryAfterSec: number } | null> {
    if (this.dryRun || this.isTrusted(ip)) return null;
    const client = this.clientOf(ip);
    if (!this.hints.has(client)) return null;
    const pairs = this.rules
      // Any ip rule: an operator may block on one without `block` (blockByHand).
      .filter((r) => r.key === 'ip' && (!r.protocols || r.protocols.includes(protocol)))
      .map((rule) => this.ruleSpec(rule, client, ''));
    if (pairs.length === 0) return null;
    const r = await this.store.hit(pairs.map((p) => p.spec), { count: false });
    if (r.ok || !r.blocked) {
      this.hints.forget(client);
      return null;
    }
    return { rule: pairs[r.index]!.rule.name, retryAfterSec: retrySec(r.retryAfterMs) };
  }

  async check(a: Attempt): Promise<Decision> {
    if (this.isTrusted(a.ip)) return { kind: 'allow', specs: [], trusted: true, knownGood: false };
    const pairs = this.specsFor(a);
    const client = this.clientOf(a.ip);
    const kg = this.cfg.knownGood;
    const knownGoodKey = kg ? this.keys.knownGoodKey(clientKey(a.ip, this.cfg.ipv6Prefix, kg.ipv4Prefix), a.user) : undefined;
    const specs = pairs.map((p) => p.spec);
    const base = { pairs, client, user: a.user, knownGoodKey };
    if (specs.length === 0 && !knownGoodKey) return { kind: 'allow', specs, trusted: false, knownGood: false };
    const r = await this.store.hit(specs, { knownGoodKey });
    if (r.ok) {
      for (const i of r.blockedNow ?? []) if (pairs[i]!.rule.key === 'ip') this.hints.note(client, pairs[i]!.rule.block ?? 0);
      return { kind: 'allow', specs, trusted: false, knownGood: r.knownGood ?? false, settlement: { ...base, reserved: true, route: r.route } };
    }
    const refusal = { rule: pairs[r.index]!.rule.name, retryAfterSec: retrySec(r.retryAfterMs), count: r.count, blocked: r.blocked };
    if (r.blocked && pairs[r.index]!.rule.key === 'ip') this.hints.note(client, r.retryAfterMs);
    if (this.dryRun) {
      // Nothing was counted or reserved by the refused hit; record() still counts the outcome.
      return { kind: 'allow', specs, trusted: false, knownGood: false, wouldRefuse: refusal, settlement: { ...base, reserved: false } };
    }
    return { kind: 'refuse', ...refusal };
  }

  /** The dedupe fingerprint of an allowed attempt's password (call before wiping it). */
  fingerprint(decision: Decision, password: Buffer): string | undefined {
    if (decision.kind !== 'allow' || !decision.settlement || !this.cfg.dedupeFailures) return undefined;
    if (!decision.specs.some((s) => s.dedupe)) return undefined;
    return this.keys.fingerprint(decision.settlement.client, decision.settlement.user, password);
  }

  /** Settle what check reserved and count the outcome. A backend that could not be reached
   *  is not the user's failure. Returns the tarpit delay for a failure (0 otherwise). */
  async record(decision: Decision, outcome: Outcome, fingerprint?: string): Promise<number> {
    const st = decision.kind === 'allow' ? decision.settlement : undefined;
    if (!st) return 0;
    const hasFailures = st.pairs.some((p) => p.rule.count === 'failures');
    const kg = outcome === 'ok' && st.knownGoodKey ? this.cfg.knownGood : undefined;
    if (!hasFailures && !kg) return 0;
    const failed = outcome === 'fail';
    const counts = await this.store.settle(
      st.pairs.map((p) => p.spec),
      {
        failed,
        reserved: st.reserved,
        fingerprint: failed ? fingerprint : undefined,
        members: st.pairs.map((p) => (p.rule.distinct === 'ip' ? st.client : p.rule.distinct === 'user' ? this.keys.userHash(st.user) : null)),
        knownGood: kg ? { key: st.knownGoodKey!, ttlMs: kg.ttl } : undefined,
      },
      st.route,
    );
    if (!failed) return 0;
    st.pairs.forEach((p, i) => {
      if (p.rule.key === 'ip' && p.rule.block !== undefined && (counts[i] ?? 0) >= p.rule.limit) this.hints.note(st.client, p.rule.block);
    });
    return Math.max(0, ...st.pairs.map((p, i) => (p.rule.delay && p.rule.count === 'failures' ? tarpitDelayMs(p.rule.delay, counts[i] ?? 0) : 0)));
  }
}
