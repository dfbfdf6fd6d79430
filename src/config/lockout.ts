// Which rules of a config an attacker can turn against an account's owner: a rule keyed on the
// account (or on a password anyone may share) refuses everyone who tries it once it trips,
// unless known-good pairs and password hints let the owner through. `mailgate --check` and
// start-up warn about each, naming the rule. Pure.
import type { LimitsConfig } from './schema.js';

export interface LockoutRisk {
  /** The rule's place and name, as an operator finds it in the file. */
  rule: string;
  why: string;
}

export function lockoutRisks(limits: LimitsConfig): LockoutRisk[] {
  const out: LockoutRisk[] = [];
  limits.rules.forEach((r, i) => {
    if (r.key !== 'user' && r.key !== 'password') return;
    if (limits.passwordHint !== undefined) return;
    const rule = `limits.rules.${i} (${r.name})`;
    const trips = r.key === 'user' ? `${r.limit} ${r.distinct ? 'addresses failing' : r.count} for one account` : `one password failing for ${r.limit} accounts`;
    out.push({
      rule,
      why:
        limits.knownGood === undefined
          ? `can lock owners out: once ${trips} trip it, it refuses the owner too, from anywhere; set limits.knownGood and limits.passwordHint`
          : `refuses an owner on a new network while it holds (known-good pairs cover only networks they logged in from); set limits.passwordHint`,
    });
  });
  return out;
}
