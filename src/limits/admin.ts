// Admin queries on the limits: which rules and counter keys concern an IP or a user, blocks
// by hand, and forgetting the connect-time hint of a lifted block. admin/api.ts calls these;
// the login path never does. Subjects are a client address and/or a canonical user name.
import type { Membership } from '../groups/groups.js';
import { parseKey } from './keys.js';
import { appliesTo, type Policy, type RuleSpec } from './policy.js';

interface Subject {
  ip?: string;
  user?: string;
}

/** Every rule that applies to this IP and/or canonical user (a rule keyed on both needs
 *  both), with its counter spec; with the IP's groups, as a login from it counts. */
export function specsForSubject(policy: Policy, q: Subject, groups?: Membership): RuleSpec[] {
  const out: RuleSpec[] = [];
  for (const rule of policy.rules) {
    // Rules narrowed to groups the address is not in (or excluded from) are not its.
    if (q.ip !== undefined && !appliesTo(rule, groups)) continue;
    // A password rule concerns no IP or user (its key is a sprayed password's hash).
    const wanted = rule.key === 'ip' ? q.ip !== undefined : rule.key === 'user' ? q.user !== undefined : rule.key === 'ip+user' && q.ip !== undefined && q.user !== undefined;
    const client = q.ip !== undefined ? policy.ruleClient(rule, q.ip, groups?.together) : '';
    if (wanted && client !== null) out.push(policy.ruleSpec(rule, client, q.user ?? ''));
  }
  return out;
}

/** Does this counter key belong to the IP / canonical user? */
export function keyConcerns(policy: Policy, key: string, q: Subject): boolean {
  const k = parseKey(key);
  if (!k) return false;
  if (q.ip !== undefined && k.ip === policy.clientOf(q.ip)) return true;
  return q.user !== undefined && k.userHash === policy.keys.userHash(q.user);
}

/** Block a subject by hand for `ms` on the rules keyed exactly on it (ip, user or ip+user),
 *  or on the one named. Returns the rules blocked (none: no such rule). An ip block is refused
 *  at connect by this process at once, by others from their next login on. */
export async function blockByHand(policy: Policy, q: Subject, ms: number, ruleName?: string): Promise<string[]> {
  const kind = q.ip !== undefined && q.user !== undefined ? 'ip+user' : q.ip !== undefined ? 'ip' : 'user';
  const client = q.ip !== undefined ? policy.clientOf(q.ip) : '';
  const rules = policy.rules.filter((r) => r.key === kind && (ruleName === undefined || r.name === ruleName));
  for (const rule of rules) await policy.store.block(policy.keys.ruleKey(rule, client, q.user ?? ''), ms);
  if (kind === 'ip' && rules.length) policy.hints.note(client, ms);
  return rules.map((r) => r.name);
}

/** Forget the connect-time hint of an IP whose blocks were lifted. */
export function forgetBlocked(policy: Policy, ip: string): void {
  policy.hints.forget(policy.clientOf(ip));
}
