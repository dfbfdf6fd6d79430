// The process's spliced sessions without sockets: the list is bounded with its total, a kick
// ends exactly the matching sessions (by user or by address), logs and counts each; the
// admin API's target names one user (canonical) or one address (canonical), never both.
import { describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { AdminError } from '../../src/admin/api.js';
import { kickTarget } from '../../src/admin/sessions.js';
import type { Splice, SpliceStats } from '../../src/backend/splice.js';
import type { ListenerConfig } from '../../src/config/schema.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { LiveSessions, SplicedSession } from '../../src/server/live-sessions.js';
import { captureLogger } from '../helpers/log-capture.js';

function fakeSplice(): Splice & { ended: string[] } {
  const stats: SpliceStats = { bytesIn: 3, bytesOut: 5, endedBy: 'client' };
  const ended: string[] = [];
  return { ended, stats, done: new Promise(() => undefined), destroy: (why = 'shutdown') => void ended.push(why) };
}

function rig(n: number, who: (i: number) => { user: string; ip: string }) {
  const { logger, captured } = captureLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const live = new LiveSessions(logger, metrics);
  const listener = { name: 'imap', protocol: 'imap' } as ListenerConfig;
  const splices = Array.from({ length: n }, (_, i) => {
    const sp = fakeSplice();
    const { user, ip } = who(i);
    live.add(new SplicedSession(sp, {} as Socket, { ip, port: 1, localIp: '127.0.0.1', localPort: 143, sessionId: `s${i}` }, listener, user));
    return sp;
  });
  return { live, splices, captured, metrics };
}

describe('live sessions', () => {
  it('lists at most the limit, oldest first, with the total', () => {
    const { live } = rig(5, (i) => ({ user: `u${i}`, ip: '192.0.2.1' }));
    const l = live.list(2);
    expect(l.total).toBe(5);
    expect(l.sessions.map((s) => [s.session, s.user, s.tls, s.bytesIn, s.bytesOut, s.listener])).toEqual([
      ['s0', 'u0', null, 3, 5, 'imap'],
      ['s1', 'u1', null, 3, 5, 'imap'],
    ]);
  });

  it('a kick ends the matching sessions only, logs and counts each', async () => {
    const { live, splices, captured, metrics } = rig(4, (i) => ({ user: i % 2 ? 'bob' : 'alice', ip: `192.0.2.${i}` }));
    expect(live.kick({ user: 'alice' })).toBe(2);
    expect(splices.map((s) => s.ended)).toEqual([['kicked'], [], ['kicked'], []]);
    expect(live.kick({ ip: '192.0.2.3' })).toBe(1);
    expect(live.kick({ user: 'carol' })).toBe(0);
    expect(live.list().sessions.map((s) => s.session)).toEqual(['s1']);
    expect(captured.lines.filter((l) => l.event === 'session.kicked').map((l) => [l.user, l.ip])).toEqual([
      ['alice', '192.0.2.0'],
      ['alice', '192.0.2.2'],
      ['bob', '192.0.2.3'],
    ]);
    expect(await metrics.registry.getSingleMetricAsString('mailgate_sessions_kicked_total')).toMatch(/^mailgate_sessions_kicked_total 3$/m);
  });

  it('the kick target: one user or one address, canonical', () => {
    expect(kickTarget(new URLSearchParams('user=alice'))).toEqual({ user: 'alice' });
    expect(kickTarget(new URLSearchParams('ip=::ffff:192.0.2.1'))).toEqual({ ip: '192.0.2.1' });
    expect(kickTarget(new URLSearchParams('ip=2001:DB8::1'))).toEqual({ ip: '2001:db8::1' });
    for (const bad of ['', 'user=alice&ip=192.0.2.1', 'ip=nope']) expect(() => kickTarget(new URLSearchParams(bad))).toThrow(AdminError);
  });
});
