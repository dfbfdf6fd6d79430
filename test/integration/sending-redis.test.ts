// Sending limits on a real redis-server, as two instances share them: what one instance counted
// the other refuses on; the alert goes out once, from the instance whose message crossed the
// limit; every key has a TTL, sits in the account's slot and holds neither the user name nor an
// address; a reset on one instance lifts the limit on both.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import type { AlertEvent } from '../../src/integrations/alerts.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { sendingLimits, type SendingLimits } from '../../src/limits/sending.js';
import { RedisStore } from '../../src/stores/redis.js';
import { captureLogger } from '../helpers/log-capture.js';
import { keySlot, scanKeys } from '../helpers/redis.js';
import { redisForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const rig = redisForFile();
let admin: Redis;
const stores: RedisStore[] = [];
beforeAll(() => {
  admin = new Redis(rig.redis.url);
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  admin?.disconnect();
});

const PREFIX = 'sending:';
const cfg = parseConfig({
  listeners: [{ name: 's', protocol: 'smtp', listen: '127.0.0.1:1587', tls: 'none', backend: 'b' }],
  backends: { b: { host: '127.0.0.1', port: 587 } },
  limits: { keySecret: 'sending-redis-secret-0001', sending: { messagesPerDay: 3, newRecipientsPerDay: 4 } },
});

/** One mailgate instance: its own store connection, keys, clock and alerts. */
function instance(): { limits: SendingLimits; events: AlertEvent[] } {
  const clock = new ManualClock(Date.now());
  const store = new RedisStore(new Redis(rig.redis.url, { keyPrefix: PREFIX }), { clock });
  stores.push(store);
  const events: AlertEvent[] = [];
  const limits = sendingLimits(cfg, store, new KeyBuilder(cfg.limits.keySecret), clock, captureLogger().logger, (e) => events.push(e))!;
  return { limits, events };
}

/** One message through `i`; accepted() is fire and forget: wait until the store has it. */
async function send(i: SendingLimits, user: string, to: string[]): Promise<void> {
  const before = (await i.view(user)).messages.count;
  const prints = await Promise.all(to.map(async (t) => (await i.checkRcpt(user, t, { recipients: 0, newRecipients: 0 })).print));
  i.accepted(user, prints);
  await until(async () => (await i.view(user)).messages.count > before, 'the message counted');
}

describe('sending limits on Redis, across two instances', () => {
  it('counts from both, refuses on both, alerts once, and a reset on one lifts it on both', async () => {
    const [a, b] = [instance(), instance()];
    const user = 'Alice.Sender@example.com';
    await send(a.limits, user, ['one@example.org', 'two@example.org']);
    await send(b.limits, user, ['three@example.org']);
    expect(await a.limits.checkRcpt(user, 'TWO@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ ok: true, isNew: false });
    expect(await b.limits.checkRcpt(user, 'five@example.org', { recipients: 0, newRecipients: 1 })).toMatchObject({ ok: false, limit: 'newRecipientsPerDay' });
    await send(b.limits, user, ['four@example.org']);
    expect(b.events.map((e) => e.limit).sort()).toEqual(['messagesPerDay', 'newRecipientsPerDay']);
    expect(a.events).toEqual([]);
    expect(await a.limits.checkMail(user)).toMatchObject({ ok: false, limit: 'messagesPerDay' });
    expect(await b.limits.view(user)).toMatchObject({ messages: { count: 3, limit: 3, remaining: 0 }, newRecipients: { count: 4, limit: 4, remaining: 0 } });

    const h = new KeyBuilder(cfg.limits.keySecret).userHash(user);
    const keys = (await scanKeys(admin, PREFIX)).filter((k) => k.key.includes(h));
    expect(keys.map((k) => k.key.slice(PREFIX.length)).sort()).toEqual([`{u:${h}}sc:${h}`, `{u:${h}}sk:${h}`]);
    expect(new Set(keys.map((k) => keySlot(k.key))).size).toBe(1);
    for (const k of keys) {
      expect(k.pttl, k.key).toBeGreaterThan(0);
      expect(k.key.toLowerCase()).not.toMatch(/alice|example/);
    }
    const members = await admin.zrange(`${PREFIX}{u:${h}}sk:${h}`, '0', '-1');
    expect(members).toHaveLength(4);
    expect(members.join(' ')).not.toMatch(/@|example/);

    await a.limits.reset(user, false);
    expect(await b.limits.checkMail(user)).toEqual({ ok: true });
    expect(await b.limits.checkRcpt(user, 'one@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ isNew: false });
    await b.limits.reset(user, true);
    expect(await a.limits.checkRcpt(user, 'one@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ isNew: true });
  });

  it('parallel messages from two instances: every one counted, the alert from exactly one', async () => {
    const [a, b] = [instance(), instance()];
    const user = 'bob@example.com';
    for (let n = 0; n < 6; n++) {
      const i = n % 2 ? a.limits : b.limits;
      i.accepted(user, [(await i.checkRcpt(user, `r${n}@example.org`, { recipients: 0, newRecipients: 0 })).print]);
    }
    await until(async () => (await a.limits.view(user)).messages.count === 6, 'six messages counted');
    expect((await a.limits.view(user)).newRecipients.count).toBe(6);
    // The alert is raised after the add answers: give the last answers a moment.
    await until(() => [...a.events, ...b.events].length === 2, 'two alerts');
    expect([...a.events, ...b.events].map((e) => e.limit).sort()).toEqual(['messagesPerDay', 'newRecipientsPerDay']);
  });
});
