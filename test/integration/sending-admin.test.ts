// The sending-limits admin endpoint over HTTP and the CLI against it: the admin server started
// alone in-process with SendingLimits on a memory store and a hand-moved clock (the proxy's
// wiring into the splice is tested with real submission).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminMain } from '../../src/admin/client.js';
import { AdminServer, type AdminDeps } from '../../src/admin/server.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { sendingLimits, type SendingLimits } from '../../src/limits/sending.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { captureLogger } from '../helpers/log-capture.js';

const TOKEN = 'admin-token-for-tests-0123';
const HOUR = 3_600_000;
const clock = new ManualClock();
const { logger, captured } = captureLogger();
const store = new MemoryStore(clock);
const keys = new KeyBuilder('sending-admin-secret-0001');
const cfg = parseConfig({
  listeners: [{ name: 's', protocol: 'smtp', listen: '127.0.0.1:1587', tls: 'none', backend: 'b' }],
  backends: { b: { host: '127.0.0.1', port: 587 } },
  limits: { sending: { messagesPerDay: 2, newRecipientsPerDay: 10 } },
});
const limits = sendingLimits(cfg, store, keys, clock, logger, () => undefined)!;
let admin: AdminServer;
let url: string;

const deps = (sending?: () => SendingLimits | null): AdminDeps => ({
  policy: () => {
    throw new Error('not used by these routes');
  },
  store,
  metrics: createMetrics({ defaultMetrics: false }),
  ready: async () => ({}),
  token: () => TOKEN,
  sending,
});

beforeAll(async () => {
  admin = new AdminServer('127.0.0.1:0', deps(() => limits), logger);
  url = `http://127.0.0.1:${(await admin.start()).port}`;
});
afterAll(() => admin.stop());

const api = (path: string, method = 'GET', token: string | null = TOKEN) => fetch(url + path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
const cli = async (...args: string[]) => {
  let text = '';
  const code = await adminMain([...args, '--url', url, '--token', TOKEN], (s) => (text += s));
  return { code, text };
};

/** Two messages from alice (canonical, as the login path gives it): her messagesPerDay reached. */
async function sendTwo(): Promise<void> {
  for (const to of ['a@example.org', 'b@example.org']) limits.accepted('alice', [(await limits.checkRcpt('alice', to, { recipients: 0, newRecipients: 0 })).print]);
  await new Promise((r) => setImmediate(r));
}

describe('sending limits over the admin API', () => {
  it('GET shows the counts, limits, what is left and the window; it needs the token; the user is canonical', async () => {
    await sendTwo();
    clock.advance(HOUR);
    expect((await api('/api/v1/sending?user=alice', 'GET', null)).status).toBe(401);
    const r = await api('/api/v1/sending?user=%20Alice');
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({
      userHash: keys.userHash('alice'),
      windowSeconds: 86_400,
      windowLeftSeconds: 23 * 3600,
      messages: { count: 2, limit: 2, remaining: 0 },
      recipients: { count: 2, limit: null, remaining: null },
      newRecipients: { count: 2, limit: 10, remaining: 8 },
    });
    expect(captured.raw.join('\n')).not.toMatch(/alice/i);
  });

  it('DELETE lifts the limit and keeps the recipients; known=1 forgets them; the CLI does both', async () => {
    expect(await limits.checkMail('alice')).toMatchObject({ ok: false, limit: 'messagesPerDay' });
    const r = await cli('sending', '--user', 'alice', '--reset');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.text)).toMatchObject({ reset: true, knownRecipients: 'kept', messages: { count: 0, remaining: 2 } });
    expect(await limits.checkMail('alice')).toEqual({ ok: true });
    expect(await limits.checkRcpt('alice', 'a@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ isNew: false });
    expect((await cli('sending', '--user', 'alice', '--reset', '--known')).code).toBe(0);
    expect(await limits.checkRcpt('alice', 'a@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ isNew: true });
    const shown = await cli('sending', '--user', 'alice');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.text)).toMatchObject({ messages: { count: 0 } });
  });

  it('answers 400 without a user or with a bad known, 405 for other methods, 404 without limits.sending', async () => {
    expect((await api('/api/v1/sending')).status).toBe(400);
    expect((await api('/api/v1/sending?user=alice&known=yes', 'DELETE')).status).toBe(400);
    expect((await api('/api/v1/sending?user=alice', 'POST')).status).toBe(405);
    const bare = new AdminServer('127.0.0.1:0', deps(() => null), logger);
    const port = (await bare.start()).port;
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/sending?user=alice`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(r.status).toBe(404);
      expect(((await r.json()) as { detail: string }).detail).toContain('limits.sending');
    } finally {
      await bare.stop();
    }
  });

  it('the CLI refuses sending without --user, or --known without --reset (exit 2)', async () => {
    for (const args of [['sending'], ['sending', '--user', 'alice', '--known']]) {
      let text = '';
      expect(await adminMain([...args, '--url', 'http://127.0.0.1:1'], (s) => (text += s))).toBe(2);
      expect(text).toContain('sending needs --user');
    }
  });
});
