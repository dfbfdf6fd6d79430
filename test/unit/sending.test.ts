// Sending limits (limits/sending.ts) on the memory store and a manual clock: the checks at MAIL
// and RCPT, counting accepted messages, the alert once per limit and window, failing open on a
// store that fails or hangs; the config block and the recipient prints.
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { alertBody, type AlertEvent } from '../../src/integrations/alerts.js';
import { KeyBuilder, slotTag } from '../../src/limits/keys.js';
import { humanWait, refusalReply, sendingLimits, SendingLimits } from '../../src/limits/sending.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { MemorySending } from '../../src/stores/memory-sending.js';
import type { LimitStore } from '../../src/stores/store.js';
import { captureLogger } from '../helpers/log-capture.js';

const keys = new KeyBuilder('sending-test-secret-0001');
const HOUR = 3_600_000;
const base = (sending?: Record<string, unknown>) => ({
  listeners: [{ name: 's', protocol: 'smtp', listen: '127.0.0.1:1587', tls: 'none', backend: 'b' }],
  backends: { b: { host: '127.0.0.1', port: 587 } },
  limits: sending === undefined ? {} : { sending },
});

function setup(sending: Record<string, unknown>, store?: LimitStore) {
  const clock = new ManualClock();
  const s = store ?? new MemoryStore(clock);
  const events: AlertEvent[] = [];
  const { logger, captured } = captureLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const limits = sendingLimits(parseConfig(base(sending)), s, keys, clock, logger, (e) => events.push(e), metrics)!;
  /** accepted() is fire and forget: let its store calls run. */
  const settle = () => new Promise((r) => setImmediate(r));
  const send = async (user: string, to: string[]) => {
    const prints: string[] = [];
    for (const t of to) prints.push((await limits.checkRcpt(user, t, { recipients: 0, newRecipients: 0 })).print);
    limits.accepted(user, prints);
    await settle();
  };
  return { clock, store: s, events, limits, captured, metrics, settle, send };
}

describe('recipient prints', () => {
  it('are keyed per account, fold case and angle brackets, and never hold the address', () => {
    const p = keys.recipientPrint('alice', 'Bob@Example.ORG');
    expect(keys.recipientPrint('alice', '<bob@example.org>')).toBe(p);
    expect(keys.recipientPrint('alice', '<@relay.example:bob@example.org>')).toBe(p);
    expect(keys.recipientPrint('bob', 'bob@example.org')).not.toBe(p);
    expect(new KeyBuilder('another-secret-000001').recipientPrint('alice', 'bob@example.org')).not.toBe(p);
    expect(keys.recipientPrint('alice', 'bob2@example.org')).not.toBe(p);
    expect(p).toMatch(/^[\w-]{16}$/);
  });

  it('sending keys share the account\'s slot and hold no name', () => {
    const tag = slotTag(keys.hintKey('alice'));
    expect(slotTag(keys.sendingKey('alice'))).toBe(tag);
    expect(slotTag(keys.knownRecipientsKey('alice'))).toBe(tag);
    expect(keys.sendingKey('alice')).not.toContain('alice');
    expect(keys.sendingKey('alice')).not.toBe(keys.knownRecipientsKey('alice'));
  });
});

describe('the reply', () => {
  it('is one 451 4.7.1 line naming the limit and the wait, rounded up', () => {
    expect(refusalReply('Daily sending limit reached', 'newRecipientsPerDay', 5 * HOUR + 1).toString()).toBe('451 4.7.1 Daily sending limit reached (first-time recipients); try again in 6 hours\r\n');
    expect(humanWait(HOUR)).toBe('1 hour');
    expect(humanWait(61_000)).toBe('2 minutes');
    expect(humanWait(1)).toBe('1 minute');
  });
});

describe('sending limits', () => {
  it('is null without limits.sending', () => {
    const clock = new ManualClock();
    expect(sendingLimits(parseConfig(base()), new MemoryStore(clock), keys, clock, captureLogger().logger, () => undefined)).toBeNull();
  });

  it('refuses the MAIL after messagesPerDay accepted messages until the window ends; others are apart', async () => {
    const t = setup({ messagesPerDay: 2, window: '1d' });
    for (let i = 0; i < 2; i++) {
      expect(await t.limits.checkMail('alice')).toEqual({ ok: true });
      await t.send('alice', ['bob@example.org']);
    }
    t.clock.advance(HOUR);
    const v = await t.limits.checkMail('alice');
    expect(v).toMatchObject({ ok: false, limit: 'messagesPerDay' });
    if (v.ok) throw new Error('unreachable');
    expect(v.retryAfterMs).toBe(23 * HOUR);
    expect(v.reply.toString()).toBe('451 4.7.1 Daily sending limit reached (messages); try again in 23 hours\r\n');
    expect(v.reply.toString()).not.toContain('alice');
    expect(await t.limits.checkMail('carol')).toEqual({ ok: true });
    t.clock.advance(23 * HOUR);
    expect(await t.limits.checkMail('alice')).toEqual({ ok: true });
    expect(await t.metrics.registry.getSingleMetricAsString('mailgate_sending_messages_total')).toMatch(/ 2$/m);
  });

  it('refuses the RCPT that would cross recipientsPerDay, counting the message in progress', async () => {
    const t = setup({ recipientsPerDay: 3 });
    await t.send('alice', ['a@example.org', 'b@example.org']);
    expect(await t.limits.checkRcpt('alice', 'c@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ ok: true, isNew: true });
    const v = await t.limits.checkRcpt('alice', 'a@example.org', { recipients: 1, newRecipients: 1 });
    expect(v).toMatchObject({ ok: false, limit: 'recipientsPerDay', isNew: false, print: keys.recipientPrint('alice', 'a@example.org') });
    // One message alone over the limit, nothing counted yet: wait a whole window.
    expect(await t.limits.checkRcpt('bob', 'd@example.org', { recipients: 3, newRecipients: 3 })).toMatchObject({ ok: false, limit: 'recipientsPerDay', retryAfterMs: 24 * HOUR });
  });

  it('first-time recipients: a known one still passes at the limit, a new one does not; known ones stay known across windows', async () => {
    const t = setup({ newRecipientsPerDay: 2, window: '1d', knownRecipientsFor: '30d' });
    await t.send('alice', ['a@example.org', 'b@example.org']);
    const known = await t.limits.checkRcpt('alice', '<A@example.org>', { recipients: 0, newRecipients: 0 });
    expect(known).toMatchObject({ ok: true, isNew: false });
    const stranger = await t.limits.checkRcpt('alice', 'x@example.org', { recipients: 0, newRecipients: 0 });
    expect(stranger).toMatchObject({ ok: false, limit: 'newRecipientsPerDay', isNew: true });
    if (!stranger.ok) expect(stranger.reply.toString()).toContain('(first-time recipients)');
    t.clock.advance(24 * HOUR);
    expect(await t.limits.checkRcpt('alice', 'x@example.org', { recipients: 0, newRecipients: 1 })).toMatchObject({ ok: true, isNew: true });
    expect(await t.limits.checkRcpt('alice', 'y@example.org', { recipients: 1, newRecipients: 2 })).toMatchObject({ ok: false, limit: 'newRecipientsPerDay' });
    expect(await t.limits.checkRcpt('alice', 'b@example.org', { recipients: 1, newRecipients: 2 })).toMatchObject({ ok: true, isNew: false });
  });

  it('raises sending-limit once per limit and window, with the account\'s hash and counts', async () => {
    const t = setup({ messagesPerDay: 2, newRecipientsPerDay: 3, window: '1d' });
    await t.send('alice', ['a@example.org', 'b@example.org']);
    expect(t.events).toEqual([]);
    await t.send('alice', ['c@example.org', 'd@example.org']);
    expect(t.events.map((e) => e.limit).sort()).toEqual(['messagesPerDay', 'newRecipientsPerDay']);
    expect(t.events[0]).toMatchObject({ kind: 'sending-limit', subject: keys.userHash('alice'), counts: { messages: 2, recipients: 4, newRecipients: 4 } });
    expect(JSON.stringify(t.events)).not.toMatch(/alice|example\.org/);
    // Past the limits (another instance let it through, or the message was in flight): no more.
    await t.send('alice', ['e@example.org']);
    expect(t.events).toHaveLength(2);
    t.clock.advance(24 * HOUR);
    await t.send('alice', ['a@example.org']);
    await t.send('alice', ['a@example.org']);
    expect(t.events.map((e) => e.limit)).toEqual([expect.any(String), expect.any(String), 'messagesPerDay']);
  });

  it('the alert\'s text says which limit and until when, with the hash only', async () => {
    const t = setup({ messagesPerDay: 1 });
    await t.send('alice', ['a@example.org']);
    const body = alertBody({ kind: 'sending-limit', events: t.events, count: 1 });
    expect(body.text).toBe(`mailgate: an account reached a sending limit: ${keys.userHash('alice')} limit messagesPerDay until ${new Date(t.clock.now() + 24 * HOUR).toISOString()}`);
  });

  it('view and reset: counts, limits, what is left; known recipients forgotten only when asked', async () => {
    const t = setup({ messagesPerDay: 10, newRecipientsPerDay: 5, window: '1d' });
    await t.send('alice', ['a@example.org', 'b@example.org']);
    t.clock.advance(HOUR);
    expect(await t.limits.view('alice')).toEqual({
      userHash: keys.userHash('alice'),
      windowSeconds: 86_400,
      windowLeftSeconds: 23 * 3600,
      messages: { count: 1, limit: 10, remaining: 9 },
      recipients: { count: 2, limit: null, remaining: null },
      newRecipients: { count: 2, limit: 5, remaining: 3 },
    });
    await t.limits.reset('alice', false);
    expect((await t.limits.view('alice')).messages.count).toBe(0);
    expect(await t.limits.checkRcpt('alice', 'a@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ isNew: false });
    await t.limits.reset('alice', true);
    expect(await t.limits.checkRcpt('alice', 'a@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ isNew: true });
  });

  it('fails open on a store error: ok, logged without the user or address, counted', async () => {
    const clock = new ManualClock();
    const broken = new MemoryStore(clock);
    broken.sendingPeek = () => Promise.reject(new Error('connection lost'));
    broken.sendingAdd = () => Promise.reject(new Error('connection lost'));
    const t = setup({ messagesPerDay: 1, newRecipientsPerDay: 1 }, broken);
    expect(await t.limits.checkMail('alice')).toEqual({ ok: true });
    expect(await t.limits.checkRcpt('alice', 'x@example.org', { recipients: 5, newRecipients: 5 })).toMatchObject({ ok: true, isNew: false });
    t.limits.accepted('alice', ['p']);
    await t.settle();
    const lines = t.captured.lines.filter((l) => l.event === 'sending.store-failed');
    expect(lines.map((l) => l.op)).toEqual(['check', 'check', 'count']);
    expect(t.captured.raw.join('\n')).not.toMatch(/alice|example\.org/);
    const errors = await t.metrics.registry.getSingleMetricAsString('mailgate_sending_store_errors_total');
    expect(errors).toMatch(/op="check"} 2$/m);
    expect(errors).toMatch(/op="count"} 1$/m);
  });

  describe('a store that does not answer', () => {
    afterEach(() => vi.useRealTimers());
    it('lets the command through after the deadline', async () => {
      vi.useFakeTimers();
      const clock = new ManualClock();
      const hung = new MemoryStore(clock);
      hung.sendingPeek = () => new Promise(() => undefined);
      const { logger, captured } = captureLogger();
      const limits = new SendingLimits(parseConfig(base({ messagesPerDay: 1 })).limits.sending!, hung as Required<MemoryStore>, keys, clock, logger, () => undefined, undefined, 500);
      let verdict: unknown;
      void limits.checkMail('alice').then((v) => (verdict = v));
      await vi.advanceTimersByTimeAsync(499);
      expect(verdict).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      expect(verdict).toEqual({ ok: true });
      expect(captured.lines.find((l) => l.event === 'sending.store-failed')).toMatchObject({ op: 'check', err: 'no answer within 500 ms' });
    });
  });
});

describe('the memory store\'s sending accounts', () => {
  it('are bounded: past the bound the account written least lately is forgotten, counts and recipients', () => {
    const clock = new ManualClock();
    const m = new MemorySending(clock, 2);
    const b = { atMs: clock.now(), windowMs: HOUR, knownTtlMs: 10 * HOUR, knownCap: 10 };
    const at = { atMs: clock.now(), knownTtlMs: 10 * HOUR };
    m.add('c1', 'k1', ['p'], b);
    m.add('c2', 'k2', ['p'], b);
    m.add('c1', 'k1', ['q'], b);
    m.add('c3', 'k3', ['p'], b);
    expect(m.accounts).toBe(2);
    expect(m.peek('c2', 'k2', ['p'], at)).toEqual({ messages: 0, recipients: 0, newRecipients: 0, ttlMs: 0, known: [false] });
    expect(m.peek('c1', 'k1', ['p', 'q'], at)).toMatchObject({ messages: 2, known: [true, true] });
  });

  it('sweeps expired windows and known sets', () => {
    const clock = new ManualClock();
    const m = new MemorySending(clock);
    m.add('c', 'k', ['p'], { atMs: clock.now(), windowMs: HOUR, knownTtlMs: 2 * HOUR, knownCap: 10 });
    clock.advance(HOUR);
    m.sweep();
    expect(m.accounts).toBe(0);
    expect(m.peek('c', 'k', ['p'], { atMs: clock.now(), knownTtlMs: 2 * HOUR }).known).toEqual([true]);
    clock.advance(HOUR);
    m.sweep();
    expect(m.peek('c', 'k', ['p'], { atMs: 0, knownTtlMs: 100 * HOUR }).known).toEqual([false]);
  });
});

describe('limits.sending in the config', () => {
  it('ships with mox\'s figures', () => {
    const cfg = loadConfig(fileURLToPath(new URL('../../config/mailgate.yaml', import.meta.url)));
    expect(cfg.limits.sending).toEqual({
      messagesPerDay: 1000,
      recipientsPerDay: 2000,
      newRecipientsPerDay: 200,
      window: 86_400_000,
      knownRecipientsFor: 30 * 86_400_000,
      maxKnownRecipients: 10_000,
      text: 'Daily sending limit reached',
    });
  });

  it('defaults everything but the limits, and is absent unless given', () => {
    expect(parseConfig(base()).limits.sending).toBeUndefined();
    expect(parseConfig(base({})).limits.sending).toEqual({ window: 86_400_000, knownRecipientsFor: 30 * 86_400_000, maxKnownRecipients: 10_000, text: 'Daily sending limit reached' });
  });

  it('names the key of a bad value', () => {
    const err = (s: Record<string, unknown>) => {
      try {
        parseConfig(base(s));
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(err({ messagesPerDay: 0 })).toMatch(/^limits\.sending\.messagesPerDay: /m);
    expect(err({ newRecipientsPerDay: 1.5 })).toMatch(/^limits\.sending\.newRecipientsPerDay: /m);
    expect(err({ window: 'a day' })).toMatch(/^limits\.sending\.window: .*duration/m);
    expect(err({ text: 'two\r\nlines' })).toMatch(/^limits\.sending\.text: .*printable ASCII/m);
    expect(err({ window: '7d', knownRecipientsFor: '1d' })).toMatch(/^limits\.sending\.knownRecipientsFor: must be at least window/m);
    expect(err({ perDay: 5 })).toMatch(/^limits\.sending\.perDay: unknown key/m);
  });
});
