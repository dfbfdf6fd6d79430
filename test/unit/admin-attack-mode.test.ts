// The attack-mode admin operations as plain functions, and the CLI's own usage errors (no
// endpoint is reached for those).
import { describe, expect, it } from 'vitest';
import { AdminError, attackModeView, forceAttackMode } from '../../src/admin/api.js';
import { adminMain } from '../../src/admin/client.js';
import { ManualClock } from '../../src/clock.js';
import { attackModeSchema } from '../../src/config/attack-mode.js';
import { AttackMode } from '../../src/limits/attack-mode.js';

describe('admin: attack mode', () => {
  it('the status view: ISO time, rounded rates', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 2, 3, 4, 5));
    const am = new AttackMode(attackModeSchema.parse({}), clock);
    expect(attackModeView(am.status())).toEqual({
      active: false,
      forced: null,
      since: null,
      failuresPerMin: 0,
      baselinePerMin: 0,
      thresholdPerMin: 10, // the floor (minFailuresPerMin), with no baseline yet
      warmedUp: false,
      enabled: true,
    });
    expect(forceAttackMode(am, 'on')).toMatchObject({ active: true, forced: 'on', since: '2026-01-02T03:04:05.000Z' });
    expect(forceAttackMode(am, 'auto')).toMatchObject({ active: false, forced: null });
  });

  it('forcing takes on, off or auto; anything else is a 400 and changes nothing', () => {
    const am = new AttackMode(attackModeSchema.parse({}), new ManualClock());
    for (const bad of [null, '', 'ON', 'yes', '1', 'auto ']) {
      const err = (() => {
        try {
          forceAttackMode(am, bad);
        } catch (e) {
          return e;
        }
      })();
      expect(err, String(bad)).toBeInstanceOf(AdminError);
      expect((err as AdminError).status).toBe(400);
    }
    expect(am.status().forced).toBeNull();
  });

  it('the CLI refuses an unknown mode before reaching the endpoint (exit 2)', async () => {
    let text = '';
    expect(await adminMain(['attack-mode', 'maybe', '--url', 'http://127.0.0.1:1'], (s) => (text += s))).toBe(2);
    expect(text).toContain('attack-mode takes on, off or auto');
    expect(text).toContain('attack-mode [on|off|auto]');
  });
});
