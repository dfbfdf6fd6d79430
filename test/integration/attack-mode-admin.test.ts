// The attack-mode admin endpoint over HTTP, the CLI against it, and its metrics: the admin
// server started alone in-process with a detector on a hand-moved clock (the proxy's own
// wiring of the detector into main.ts is tested with the login path).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminMain } from '../../src/admin/client.js';
import { AdminServer, type AdminDeps } from '../../src/admin/server.js';
import { ManualClock } from '../../src/clock.js';
import { attackModeSchema } from '../../src/config/attack-mode.js';
import { AttackMode, logAttackModeChange } from '../../src/limits/attack-mode.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { FrontDoor, logSingleSource } from '../../src/server/front-door.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { captureLogger } from '../helpers/log-capture.js';

const TOKEN = 'admin-token-for-tests-0123';
const clock = new ManualClock();
const { logger, captured } = captureLogger();
const detector = new AttackMode(attackModeSchema.parse({}), clock, (s, reason) => logAttackModeChange(logger, s, reason));
const frontDoor = new FrontDoor(clock, (s) => logSingleSource(logger, s));
const metrics = createMetrics({ defaultMetrics: false, attackMode: () => detector.status(), frontDoor: () => frontDoor.suspicious !== null });
let admin: AdminServer;
let url: string;

/** What these routes need of the admin dependencies; the policy is not one of them. */
const deps = (extra: Partial<AdminDeps> = {}): AdminDeps => ({
  policy: () => {
    throw new Error('not used by these routes');
  },
  store: new MemoryStore(clock),
  metrics,
  ready: async () => ({}),
  token: () => TOKEN,
  ...extra,
});

beforeAll(async () => {
  admin = new AdminServer('127.0.0.1:0', deps({ attackMode: () => detector }), logger);
  url = `http://127.0.0.1:${(await admin.start()).port}`;
});

afterAll(() => admin.stop());

const api = (path: string, method = 'GET', token: string | null = TOKEN) => fetch(url + path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
const gauge = (text: string, name: string) => text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));

describe('attack mode over the admin API', () => {
  it('GET reports the status; it needs the token like the rest of the API', async () => {
    expect((await api('/api/v1/attack-mode', 'GET', null)).status).toBe(401);
    const r = await api('/api/v1/attack-mode');
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ active: false, forced: null, warmedUp: false, enabled: true, thresholdPerMin: 10 });
  });

  it('POST ?mode=on|off|auto forces it, logs it once, and the metrics follow; anything else is 400', async () => {
    const on = await api('/api/v1/attack-mode?mode=on', 'POST');
    expect(on.status).toBe(200);
    expect(await on.json()).toMatchObject({ active: true, forced: 'on' });
    let text = await (await api('/metrics')).text();
    expect(gauge(text, 'mailgate_attack_mode')).toBe('mailgate_attack_mode 1');
    expect(text).toContain('mailgate_attack_mode_forced{mode="on"} 1');
    expect(text).toContain('mailgate_attack_mode_forced{mode="off"} 0');
    expect(captured.lines.filter((l) => l.event === 'auth.attack-mode-on')).toEqual([expect.objectContaining({ reason: 'forced', forced: 'on' })]);
    expect(captured.lines.filter((l) => l.event === 'admin.attack-mode')).toEqual([expect.objectContaining({ mode: 'on', active: true })]);

    for (const bad of ['', '?mode=yes', '?mode=OFF']) {
      const r = await api(`/api/v1/attack-mode${bad}`, 'POST');
      expect(r.status, bad).toBe(400);
      expect(r.headers.get('content-type')).toBe('application/problem+json');
    }
    expect(await (await api('/api/v1/attack-mode')).json()).toMatchObject({ forced: 'on' });
    expect((await api('/api/v1/attack-mode', 'DELETE')).status).toBe(405);

    expect(await (await api('/api/v1/attack-mode?mode=auto', 'POST')).json()).toMatchObject({ active: false, forced: null });
    text = await (await api('/metrics')).text();
    expect(gauge(text, 'mailgate_attack_mode')).toBe('mailgate_attack_mode 0');
    expect(captured.lines.filter((l) => l.event === 'auth.attack-mode-off')).toEqual([expect.objectContaining({ reason: 'released' })]);
  });

  it('the CLI: status, force and back to auto', async () => {
    const run = async (...args: string[]) => {
      let out = '';
      const code = await adminMain(['attack-mode', ...args, '--url', url, '--token', TOKEN], (s) => (out += s));
      return { code, body: JSON.parse(out) as Record<string, unknown> };
    };
    expect(await run()).toMatchObject({ code: 0, body: { active: false } });
    expect(await run('off')).toMatchObject({ code: 0, body: { active: false, forced: 'off' } });
    expect(await run('auto')).toMatchObject({ code: 0, body: { forced: null } });
  });

  it('the front-door gauge is 1 while one private address sends most logins', async () => {
    expect(gauge(await (await api('/metrics')).text(), 'mailgate_front_door_single_source')).toBe('mailgate_front_door_single_source 0');
    for (let i = 0; i < 60; i++) frontDoor.record('10.0.0.9');
    expect(gauge(await (await api('/metrics')).text(), 'mailgate_front_door_single_source')).toBe('mailgate_front_door_single_source 1');
    expect(captured.lines.filter((l) => l.event === 'auth.single-source')).toEqual([expect.objectContaining({ ip: '10.0.0.9', logins: 50, share: 1 })]);
  });

  it('without a detector the route is a 404', async () => {
    const bare = new AdminServer('127.0.0.1:0', deps(), logger);
    const port = (await bare.start()).port;
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/attack-mode`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(r.status).toBe(404);
    } finally {
      await bare.stop();
    }
  });
});
