// The limit rules: which apply to an attempt, in what order, and what the store says.
// Protocol-blind: sees only {protocol, ip, user}. A Decision is data, never an exception.
import ipaddr from 'ipaddr.js';
import type { LimitsConfig, ProtocolName, RuleConfig } from '../config/schema.js';
import type { CounterSpec, LimitStore, StoreRoute } from '../stores/store.js';
import { clientKey, KeyBuilder } from './keys.js';

export interface Attempt {
  protocol: ProtocolName;
  /** Socket address of the client (any form). */
  ip: string;
  /** Canonical user name (identity.ts). */
  user: string;
}

export type Decision =
  | { kind: 'allow'; specs: readonly CounterSpec[]; trusted: boolean; route?: StoreRoute }
  | { kind: 'refuse'; rule: string; retryAfterSec: number; count: number; blocked: boolean };

export type Outcome = 'ok' | 'fail' | 'unavailable';

const KEY_ORDER: Record<RuleConfig['key'], number> = { ip: 0, 'ip+user': 1, user: 2 };

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

export class Policy {
  private readonly rules: readonly RuleConfig[];
  private readonly trusted: readonly Range[];

  constructor(
    private readonly cfg: LimitsConfig,
    private readonly store: LimitStore,
    private readonly keys: KeyBuilder,
  ) {
    // IP rules before user rules, otherwise in file order (stable sort).
    this.rules = [...cfg.rules].sort((a, b) => KEY_ORDER[a.key] - KEY_ORDER[b.key]);
    this.trusted = cfg.trustedNetworks.map(parseRange);
  }

  isTrusted(address: string): boolean {
    if (!ipaddr.isValid(address)) return false;
    const addr = ipaddr.process(address);
    return this.trusted.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
  }

  specsFor(a: Attempt): { rule: RuleConfig; spec: CounterSpec }[] {
    const ip = clientKey(a.ip, this.cfg.ipv6Prefix);
    return this.rules
      .filter((r) => !r.protocols || r.protocols.includes(a.protocol))
      .map((rule) => ({
        rule,
        spec: {
          key: this.keys.ruleKey(rule, ip, a.user),
          kind: rule.count,
          limit: rule.limit,
          windowMs: rule.window,
          blockMs: rule.block ?? null,
        },
      }));
  }

  /** Admin: every rule that applies to this IP and/or canonical user (a rule keyed on both
   *  needs both), with its counter spec. */
  specsForSubject(q: { ip?: string; user?: string }): { rule: RuleConfig; spec: CounterSpec }[] {
    const ip = q.ip !== undefined ? clientKey(q.ip, this.cfg.ipv6Prefix) : '';
    return this.rules
      .filter((r) => (r.key === 'ip' ? q.ip !== undefined : r.key === 'user' ? q.user !== undefined : q.ip !== undefined && q.user !== undefined))
      .map((rule) => ({
        rule,
        spec: { key: this.keys.ruleKey(rule, ip, q.user ?? ''), kind: rule.count, limit: rule.limit, windowMs: rule.window, blockMs: rule.block ?? null },
      }));
  }

  /** Admin: does this counter key belong to the IP / canonical user? */
  keyConcerns(key: string, q: { ip?: string; user?: string }): boolean {
    const k = parseKey(key);
    if (!k) return false;
    if (q.ip !== undefined && k.ip === clientKey(q.ip, this.cfg.ipv6Prefix)) return true;
    return q.user !== undefined && k.userHash === this.keys.userHash(q.user);
  }

  async check(a: Attempt): Promise<Decision> {
    if (this.isTrusted(a.ip)) return { kind: 'allow', specs: [], trusted: true };
    const pairs = this.specsFor(a);
    const specs = pairs.map((p) => p.spec);
    if (specs.length === 0) return { kind: 'allow', specs, trusted: false };
    const r = await this.store.hit(specs);
    if (r.ok) return { kind: 'allow', specs, trusted: false, ...(r.route ? { route: r.route } : {}) };
    return {
      kind: 'refuse',
      rule: pairs[r.index]!.rule.name,
      retryAfterSec: Math.max(1, Math.ceil(r.retryAfterMs / 1000)),
      count: r.count,
      blocked: r.blocked,
    };
  }

  /** Settle what check reserved. A backend that could not be reached is not the user's failure. */
  async record(decision: Decision, outcome: Outcome): Promise<void> {
    if (decision.kind !== 'allow' || !decision.specs.some((s) => s.kind === 'failures')) return;
    await this.store.settle(decision.specs, outcome === 'fail', decision.route);
  }
}

/** The parts of a key built by KeyBuilder.ruleKey (IPv6 keys contain ":"; hashes never do). */
export function parseKey(key: string): { rule: string; kind: 'ip' | 'user' | 'ip+user'; ip?: string; userHash?: string } | null {
  const m = /^r:([^:]+):(ip|u|iu):(.+)$/.exec(key);
  if (!m) return null;
  const [, rule, kind, rest] = m as unknown as [string, string, string, string];
  if (kind === 'ip') return { rule, kind: 'ip', ip: rest };
  if (kind === 'u') return { rule, kind: 'user', userHash: rest };
  const cut = rest.lastIndexOf(':');
  return { rule, kind: 'ip+user', ip: rest.slice(0, cut), userHash: rest.slice(cut + 1) };
}

function parseRange(cidr: string): Range {
  if (cidr.includes('/')) {
    const [net, bits] = ipaddr.parseCIDR(cidr);
    // IPv4-mapped ranges match as IPv4, like the addresses they are compared with.
    if (net.kind() === 'ipv6' && (net as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      return [(net as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    return [net, bits];
  }
  const addr = ipaddr.process(cidr);
  return [addr, addr.kind() === 'ipv4' ? 32 : 128];
}
