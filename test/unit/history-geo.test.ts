// new-network by ASN and country (limits/history.ts): history rows keep what GeoIP knows of the
// client, and the event says what is new (the network; the ASN, the country too). Through the
// auth path's checkLogin/settleLogin with real Groups over MaxMind-format files
// (test/helpers/mmdb.ts), the memory store and a manual clock; no sockets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendPools } from '../../src/backend/pool.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { Groups } from '../../src/groups/groups.js';
import { alertBody, type AlertEvent } from '../../src/integrations/alerts.js';
import { AccountHistory, geoOf, historyField, newParts, parseHistoryField } from '../../src/limits/history.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import type { Tarpit } from '../../src/limits/tarpit.js';
import { createLogger } from '../../src/logging/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { checkLogin, settleLogin, type AuthDeps } from '../../src/server/auth-path.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { writeMmdb } from '../helpers/mmdb.js';

describe('history rows with ASN and country', () => {
  it('round-trips a row with and without a client name; old rows still parse', () => {
    const geo = { asn: 64500, country: 'DE' };
    expect(historyField('192.0.2.0/24', 'imap', 'ok', undefined, geo)).toBe('192.0.2.0/24|imap|ok||64500|DE');
    expect(parseHistoryField('192.0.2.0/24|imap|ok||64500|DE')).toEqual({ network: '192.0.2.0/24', protocol: 'imap', result: 'ok', asn: 64500, country: 'DE' });
    expect(parseHistoryField(historyField('192.0.2.0/24', 'imap', 'ok', 'K-9', { country: 'NL' }))).toEqual({ network: '192.0.2.0/24', protocol: 'imap', result: 'ok', client: 'K-9', country: 'NL' });
    expect(parseHistoryField(historyField('2001:db8::/64', 'pop3', 'fail', undefined, { asn: 7 }))).toEqual({ network: '2001:db8::/64', protocol: 'pop3', result: 'fail', asn: 7 });
    expect(historyField('192.0.2.0/24', 'imap', 'ok')).toBe('192.0.2.0/24|imap|ok');
  });

  it('keeps only an AS number and a two-letter country', () => {
    expect(geoOf({ asn: 64500, country: 'de' })).toEqual({ asn: 64500, country: 'DE' });
    expect(geoOf({ asn: -1, country: 'D|E' })).toEqual({});
    expect(geoOf({ asn: 1.5, country: 'Germany' })).toEqual({});
    expect(geoOf({})).toEqual({});
  });

  it('what is new: the network first; ASN and country only when known on both sides', () => {
    const known = [{ network: '192.0.2.0/24', asn: 64500, country: 'DE' }, { network: '198.51.100.0/24' }];
    expect(newParts({ network: '192.0.2.0/24', asn: 1, country: 'FR' }, known)).toEqual([]);
    expect(newParts({ network: '203.0.113.0/24', asn: 64500, country: 'DE' }, known)).toEqual(['network']);
    expect(newParts({ network: '203.0.113.0/24', asn: 64501, country: 'DE' }, known)).toEqual(['network', 'asn']);
    expect(newParts({ network: '203.0.113.0/24', asn: 64501, country: 'FR' }, known)).toEqual(['network', 'asn', 'country']);
    expect(newParts({ network: '203.0.113.0/24' }, known)).toEqual(['network']);
    // Nothing known of where the account logged in before: a new ASN cannot be told.
    expect(newParts({ network: '203.0.113.0/24', asn: 64501, country: 'FR' }, [{ network: '198.51.100.0/24' }])).toEqual(['network']);
    expect(newParts({ network: '203.0.113.0/24', asn: 64501 }, [])).toEqual([]);
  });

  it('the webhook text names the new ASN and country', () => {
    const e: AlertEvent = { kind: 'new-network', subject: 'h', network: '203.0.113.0/24', asn: 64501, country: 'FR', new: ['network', 'asn', 'country'] };
    expect(alertBody({ kind: 'new-network', events: [e], count: 1 }).text).toBe('mailgate: an account logged in from a new network: h from 203.0.113.0/24 (new ASN AS64501, new country FR)');
  });
});

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailgate-history-geo-'));
  writeMmdb(dir, 'asn', { '192.0.2.0/24': 64500, '198.51.100.0/24': 64500, '203.0.113.0/24': 64501, '2001:db8:1::/48': 64502 });
  writeMmdb(dir, 'country', { '192.0.2.0/24': 'DE', '198.51.100.0/24': 'DE', '203.0.113.0/24': 'DE', '2001:db8:1::/48': 'NL' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The auth path's two halves with GeoIP and history on; `login` runs one verdict. */
function rig() {
  const cfg = parseConfig({
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }],
    backends: { b: { servers: ['127.0.0.1:1143'] } },
    limits: { rules: [], geoip: { asn: join(dir, 'asn.mmdb'), country: join(dir, 'country.mmdb') } },
    notify: { newNetwork: true },
  });
  const clock = new ManualClock();
  const log = createLogger('silent');
  const metrics = createMetrics({ defaultMetrics: false });
  const store = new MemoryStore(clock);
  const keys = new KeyBuilder('history-geo-secret-0123456789');
  const events: AlertEvent[] = [];
  const history = new AccountHistory(store, keys, clock, cfg, log, (e) => events.push(e));
  const deps: AuthDeps = {
    policy: new Policy(cfg.limits, store, keys, clock),
    clock,
    metrics,
    tarpit: { wait: async () => undefined } as unknown as Tarpit,
    pools: new BackendPools(() => cfg.backends, log),
    groups: new Groups(cfg.limits, { log, clock, metrics }),
    history,
  };
  const login = async (ip: string, kind: 'ok' | 'rejected' = 'ok') => {
    const check = await checkLogin(deps, log, { protocol: 'imap', clientIp: ip, user: Buffer.from('alice'), secret: Buffer.from('pw') });
    if (check.kind !== 'allowed') throw new Error(`refused: ${check.kind}`);
    await settleLogin(deps, check, 'imap', kind);
    await new Promise((r) => setImmediate(r)); // record() is fire and forget
    clock.advance(1_000);
  };
  return { login, events, history, keys, close: () => deps.groups!.close() };
}

describe('new-network through the auth path with GeoIP', () => {
  it('rows carry the ASN and country; the event says which of network, ASN, country is new', async () => {
    const { login, events, history, keys, close } = rig();
    try {
      await login('192.0.2.10'); // the first login: nothing to compare with
      await login('198.51.100.7'); // a new /24 in the same AS and country
      await login('203.0.113.5', 'rejected'); // a failure tells nothing
      await login('203.0.113.5'); // a new AS, same country
      await login('2001:db8:1::5'); // a new AS and a new country
      await login('192.0.2.99'); // known again
      const subject = keys.userHash('alice');
      expect(events).toEqual([
        { kind: 'new-network', subject, network: '198.51.100.0/24', protocol: 'imap', asn: 64500, country: 'DE', new: ['network'] },
        { kind: 'new-network', subject, network: '203.0.113.0/24', protocol: 'imap', asn: 64501, country: 'DE', new: ['network', 'asn'] },
        { kind: 'new-network', subject, network: '2001:db8:1::/64', protocol: 'imap', asn: 64502, country: 'NL', new: ['network', 'asn', 'country'] },
      ]);
      const rows = await history.entries('alice');
      expect(rows.map((r) => [r.network, r.result, r.asn, r.country, r.count])).toEqual([
        ['192.0.2.0/24', 'ok', 64500, 'DE', 2],
        ['2001:db8:1::/64', 'ok', 64502, 'NL', 1],
        ['203.0.113.0/24', 'ok', 64501, 'DE', 1],
        ['203.0.113.0/24', 'fail', 64501, 'DE', 1],
        ['198.51.100.0/24', 'ok', 64500, 'DE', 1],
      ]);
      expect(JSON.stringify(rows)).not.toContain('alice');
    } finally {
      close();
    }
  });
});
