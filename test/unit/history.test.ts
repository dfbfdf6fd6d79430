// Login history and account events (limits/history.ts) on the memory store and a manual clock.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { configSchema } from '../../src/config/schema.js';
import type { AlertEvent } from '../../src/integrations/alerts.js';
import { AccountHistory, historyField, isRetired, networkOf, parseHistoryField } from '../../src/limits/history.js';
import { KeyBuilder, slotTag } from '../../src/limits/keys.js';
import { createLogger } from '../../src/logging/logger.js';
import { imapAlert } from '../../src/protocols/imap/replies.js';
import { MemoryStore } from '../../src/stores/memory.js';

const keys = new KeyBuilder('history-test-secret-0001');
const log = createLogger('silent');

function setup(notify: Record<string, unknown> = {}) {
  const clock = new ManualClock();
  const store = new MemoryStore(clock);
  const events: AlertEvent[] = [];
  const cfg = configSchema.parse({ listeners: [], policyServer: { listen: '127.0.0.1:0' }, notify });
  const history = new AccountHistory(store, keys, clock, cfg, log, (e) => events.push(e));
  /** record() is fire and forget: let its store calls run. */
  const settle = () => new Promise((r) => setImmediate(r));
  return { clock, store, events, history, cfg, settle };
}

describe('history fields and prints', () => {
  it('groups clients by /24 and /64 and round-trips a field', () => {
    expect(networkOf('192.0.2.77')).toBe('192.0.2.0/24');
    expect(networkOf('::ffff:192.0.2.77')).toBe('192.0.2.0/24');
    expect(networkOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(parseHistoryField(historyField('2001:db8::/64', 'pop3', 'fail'))).toEqual({ network: '2001:db8::/64', protocol: 'pop3', result: 'fail' });
    expect(parseHistoryField(historyField('192.0.2.0/24', 'imap', 'ok', 'Thunderbird'))).toEqual({ network: '192.0.2.0/24', protocol: 'imap', result: 'ok', client: 'Thunderbird' });
  });

  it('a retired print is a known one that is not the newest', () => {
    const rows = (...f: string[]) => f.map((field, i) => ({ field, count: 1, firstMs: 10 - i, lastMs: 10 - i }));
    expect(isRetired(rows('B', 'A'), 'A')).toBe(true);
    expect(isRetired(rows('B', 'A'), 'B')).toBe(false);
    expect(isRetired(rows('B', 'A'), 'C')).toBe(false);
    expect(isRetired(rows('A'), 'A')).toBe(false);
  });

  it('password prints are keyed per user and history keys share the user slot', () => {
    const pw = Buffer.from('secret');
    expect(keys.passwordPrint('alice', pw)).toBe(keys.passwordPrint('alice', Buffer.from('secret')));
    expect(keys.passwordPrint('alice', pw)).not.toBe(keys.passwordPrint('bob', pw));
    expect(keys.passwordPrint('alice', pw)).not.toBe(new KeyBuilder('another-secret-00001').passwordPrint('alice', pw));
    const tag = slotTag(keys.hintKey('alice'));
    for (const k of [keys.historyKey('alice'), keys.printsKey('alice'), keys.pendingKey('alice')]) expect(slotTag(k)).toBe(tag);
    expect(keys.historyKey('alice')).not.toContain('alice');
  });

  it('the ALERT line is untagged OK with the code (RFC 9051 §7.1)', () => {
    expect(imapAlert('Your old password was used')).toBe('* OK [ALERT] Your old password was used\r\n');
  });

  it('the config refuses a wording that would end the code early', () => {
    expect(() => configSchema.parse({ listeners: [], policyServer: { listen: '127.0.0.1:0' }, notify: { imapAlert: 'bad ] text' } })).toThrow(/printable ASCII characters without/);
  });
});

describe('AccountHistory', () => {
  const ok = { user: 'alice', ip: '192.0.2.10', protocol: 'imap', result: 'ok' as const };

  it('dedupes by network, protocol and result, with count, first and last seen', async () => {
    const { history, clock, settle } = setup();
    history.record(ok);
    await settle();
    clock.advance(1_000);
    history.record({ ...ok, result: 'fail' });
    await settle();
    clock.advance(1_000);
    history.record({ ...ok, ip: '192.0.2.200', result: 'fail' });
    await settle();
    const rows = await history.entries('alice');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ network: '192.0.2.0/24', protocol: 'imap', result: 'fail', count: 2 });
    expect(Date.parse(rows[0]!.last) - Date.parse(rows[0]!.first)).toBe(1_000);
    expect(rows[1]).toMatchObject({ result: 'ok', count: 1 });
  });

  it('keeps no failure of an account without a history (a spray of made-up names)', async () => {
    const { history, settle } = setup();
    for (let i = 0; i < 20; i++) history.record({ ...ok, user: `made-up-${i}`, result: 'fail' });
    await settle();
    for (let i = 0; i < 20; i++) expect(await history.entries(`made-up-${i}`)).toEqual([]);
  });

  it('forgets entries after history.keep', async () => {
    const { history, clock, cfg, settle } = setup();
    history.record(ok);
    await settle();
    clock.advance(cfg.history.keep);
    expect(await history.entries('alice')).toEqual([]);
  });

  it('new-network: a first success from a network the account has no success from', async () => {
    const { history, events, settle } = setup({ newNetwork: true });
    history.record(ok); // the first login ever: nothing to compare with
    await settle();
    history.record({ ...ok, ip: '192.0.2.99' }); // same /24
    await settle();
    history.record({ ...ok, ip: '198.51.100.7', result: 'fail' }); // failures are not logins
    await settle();
    expect(events).toEqual([]);
    history.record({ ...ok, ip: '198.51.100.7' });
    await settle();
    expect(events).toMatchObject([{ kind: 'new-network', network: '198.51.100.0/24', protocol: 'imap', subject: keys.userHash('alice') }]);
  });

  it('retired-password: an old password after a newer one succeeded; the ALERT is taken once', async () => {
    const { history, events, clock, settle } = setup({ retiredPassword: true, imapAlert: 'Someone tried your old password' });
    const print = (p: string) => history.print('alice', Buffer.from(p));
    history.record({ ...ok, print: print('A') });
    await settle();
    history.record({ ...ok, result: 'fail', print: print('A-typo') });
    await settle();
    expect(events).toEqual([]);
    clock.advance(1_000);
    history.record({ ...ok, print: print('B') });
    await settle();
    expect(await history.takeAlert('alice')).toBeUndefined();
    history.record({ ...ok, result: 'fail', print: print('B') }); // not retired: the current one
    await settle();
    expect(events).toEqual([]);
    history.record({ ...ok, ip: '203.0.113.5', result: 'fail', print: print('A') });
    await settle();
    expect(events).toMatchObject([{ kind: 'retired-password', network: '203.0.113.0/24', subject: keys.userHash('alice') }]);
    expect(await history.takeAlert('alice')).toBe('Someone tried your old password');
    expect(await history.takeAlert('alice')).toBeUndefined();
    expect(await history.takeAlert('bob')).toBeUndefined();
  });

  it("row(): the login's history row for its settle when it is all there is to write; a row the settle wrote is not written again", async () => {
    const { history, clock, settle } = setup();
    clock.advance(5_000);
    const row = history.row({ ...ok, result: 'fail' })!;
    expect(row).toEqual({ key: keys.historyKey('alice'), field: historyField('192.0.2.0/24', 'imap', 'fail'), bounds: { atMs: clock.now(), ttlMs: expect.any(Number), cap: expect.any(Number), existing: true } });
    expect(history.row(ok)!.bounds.existing).toBe(false);
    // The store wrote it (Policy.record's settle): record() leaves it.
    history.record(ok, { ...history.row(ok)!, written: true });
    await settle();
    expect(await history.entries('alice')).toEqual([]);
    // It did not (a store that cannot): record() writes it.
    history.record(ok, history.row(ok));
    await settle();
    expect(await history.entries('alice')).toMatchObject([{ result: 'ok', count: 1 }]);
  });

  it('row(): none when the login needs reads (new-network, retired-password) or history is off', () => {
    expect(setup({ newNetwork: true }).history.row(ok)).toBeUndefined();
    expect(setup({ newNetwork: true }).history.row({ ...ok, result: 'fail' })).toBeDefined();
    const retired = setup({ retiredPassword: true }).history;
    expect(retired.row({ ...ok, print: retired.print('alice', Buffer.from('A')) })).toBeUndefined();
    const clock = new ManualClock();
    const off = configSchema.parse({ listeners: [], policyServer: { listen: '127.0.0.1:0' }, history: { enabled: false } });
    expect(new AccountHistory(new MemoryStore(clock), keys, clock, off, log, () => undefined).row(ok)).toBeUndefined();
  });

  it('keeps no print and raises nothing while notify is off', async () => {
    const { history, events, settle } = setup();
    expect(history.print('alice', Buffer.from('A'))).toBeUndefined();
    history.record({ ...ok, ip: '198.51.100.1' });
    history.record({ ...ok, ip: '203.0.113.1' });
    await settle();
    expect(events).toEqual([]);
  });
});
