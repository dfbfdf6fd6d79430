// Connection limits: per IP, in total, evicting the oldest pre-auth connection, never a
// spliced one; release keeps the counts exact.
import { describe, expect, it } from 'vitest';
import { ConnectionTracker, type TrackedConnection } from '../../src/server/connections.js';

function conn(clientKey: string, evictable = true) {
  const c = { clientKey, evictable, evicted: false, evict: () => (c.evicted = true) };
  return c satisfies TrackedConnection;
}

describe('ConnectionTracker', () => {
  it('refuses past perIp for that client only', () => {
    const t = new ConnectionTracker(() => ({ perIp: 2, total: 100 }));
    expect([t.admit(conn('a')), t.admit(conn('a')), t.admit(conn('a')), t.admit(conn('b'))]).toEqual(['ok', 'ok', 'per-ip', 'ok']);
  });

  it('at the total evicts the oldest pre-auth connection, never a spliced one', () => {
    const t = new ConnectionTracker(() => ({ perIp: 10, total: 3 }));
    const spliced = conn('a', false);
    const old = conn('b');
    const newer = conn('c');
    for (const c of [spliced, old, newer]) expect(t.admit(c)).toBe('ok');
    const incoming = conn('d');
    expect(t.admit(incoming)).toBe('ok');
    expect(old.evicted).toBe(true);
    expect(spliced.evicted).toBe(false);
    expect(t.size).toBe(3);
    expect(t.countFor('b')).toBe(0);
  });

  it('refuses at the total when nothing can be evicted', () => {
    const t = new ConnectionTracker(() => ({ perIp: 10, total: 2 }));
    t.admit(conn('a', false));
    t.admit(conn('b', false));
    expect(t.admit(conn('c'))).toBe('total');
  });

  it('release frees the slot once, and a second release is harmless', () => {
    const t = new ConnectionTracker(() => ({ perIp: 1, total: 10 }));
    const a = conn('a');
    t.admit(a);
    t.release(a);
    t.release(a);
    expect(t.countFor('a')).toBe(0);
    expect(t.admit(conn('a'))).toBe('ok');
  });
});
