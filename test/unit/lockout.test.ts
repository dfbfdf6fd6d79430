// `mailgate --check` names every rule an attacker could turn against an account's owner.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { lockoutRisks } from '../../src/config/lockout.js';

const limitsOf = (limits: unknown) =>
  parseConfig({ listeners: [{ name: 'i', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: 143 } }, limits }).limits;

const rules = [
  { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m' },
  { name: 'user-logins', key: 'user', count: 'attempts', limit: 100, window: '1h' },
  { name: 'spray', key: 'password', count: 'failures', distinct: 'user', limit: 5, window: '1d' },
];

describe('lockout risks', () => {
  it('a user or password rule without known-good pairs or hints can lock owners out', () => {
    const risks = lockoutRisks(limitsOf({ rules }));
    expect(risks.map((r) => r.rule)).toEqual(['limits.rules.1 (user-logins)', 'limits.rules.2 (spray)']);
    expect(risks[0]!.why).toMatch(/^can lock owners out: once 100 attempts for one account trip it, .*set limits\.knownGood and limits\.passwordHint$/);
  });

  it('known-good pairs alone still leave the travelling owner out; with hints nothing is said', () => {
    expect(lockoutRisks(limitsOf({ rules, knownGood: { ttl: '30d' } }))[0]!.why).toMatch(/new network .* set limits\.passwordHint$/);
    expect(lockoutRisks(limitsOf({ rules, knownGood: { ttl: '30d' }, passwordHint: { ttl: '30d' } }))).toEqual([]);
    expect(lockoutRisks(limitsOf({ rules: [rules[0]] }))).toEqual([]);
  });
});
