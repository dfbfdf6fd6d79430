// Ticket keys (server/tls-tickets.ts): every adopted context takes the process's keys and
// follows a change; the rotation draws on its interval (fake timers), a reload's retime keeps
// the keys and counts the new interval from then, stop ends it.
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ownTickets, rotationOf, TICKET_KEYS_BYTES, ticketNote, TicketKeys, TicketRotation } from '../../src/server/tls-tickets.js';

const keysOf = (ctx: tls.SecureContext) => (ctx.context as { getTicketKeys(): Buffer }).getTicketKeys();
const keySet = (byte: number) => Buffer.alloc(TICKET_KEYS_BYTES, byte);
/** A valid config around a tls section. */
const withTls = (t?: Record<string, unknown>) =>
  parseConfig({
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: t ? 'implicit' : 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: 143 } },
    ...(t ? { tls: { cert: 'c', key: 'k', ...t } } : {}),
  });

describe('TicketKeys', () => {
  it('a context adopted takes the keys, and every one follows a change', () => {
    const keys = new TicketKeys(keySet(1));
    const [a, b] = [tls.createSecureContext(), tls.createSecureContext()];
    expect(keysOf(a!)).not.toEqual(keySet(1)); // Node draws its own per context
    keys.adopt(a!);
    keys.adopt(b!);
    expect(keysOf(a!)).toEqual(keySet(1));
    keys.set(keySet(2));
    expect(keysOf(a!)).toEqual(keySet(2));
    expect(keysOf(b!)).toEqual(keySet(2));
  });

  it('keeps its own copy and refuses a key set of another size', () => {
    const given = keySet(3);
    const keys = new TicketKeys(given);
    given.fill(9);
    const ctx = tls.createSecureContext();
    keys.adopt(ctx);
    expect(keysOf(ctx)).toEqual(keySet(3));
    expect(() => keys.set(Buffer.alloc(32))).toThrow(/48 bytes/);
  });

  it('goes to a worker as base64, and back', () => {
    expect(Buffer.from(ticketNote(keySet(7)).keys, 'base64')).toEqual(keySet(7));
  });
});

describe('TicketRotation', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function rotation(everyMs: number) {
    let n = 0;
    const published: number[] = [];
    const r = new TicketRotation(everyMs, (k) => published.push(k[0]!), () => keySet(++n));
    return { r, published };
  }

  it('draws at once (not published: the caller hands it out) and again every interval', () => {
    const { r, published } = rotation(1_000);
    expect(r.current).toEqual(keySet(1));
    vi.advanceTimersByTime(999);
    expect(published).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(published).toEqual([2]);
    expect(r.current).toEqual(keySet(2));
    vi.advanceTimersByTime(2_000);
    expect(published).toEqual([2, 3, 4]);
    r.stop();
  });

  it('retime keeps the keys and counts the new interval from now; the same interval changes nothing', () => {
    const { r, published } = rotation(1_000);
    vi.advanceTimersByTime(600);
    r.retime(1_000);
    vi.advanceTimersByTime(400);
    expect(published).toEqual([2]); // not restarted
    vi.advanceTimersByTime(500);
    r.retime(5_000);
    expect(r.current).toEqual(keySet(2));
    vi.advanceTimersByTime(4_999);
    expect(published).toEqual([2]);
    vi.advanceTimersByTime(1);
    expect(published).toEqual([2, 3]);
    r.stop();
  });

  it('stop ends it, and a retime after does not restart it', () => {
    const { r, published } = rotation(1_000);
    r.stop();
    r.retime(10);
    vi.advanceTimersByTime(10_000);
    expect(published).toEqual([]);
  });

  it('one process: its contexts get each new key set', () => {
    const cfg = withTls({ ticketRotation: '1h' });
    expect(rotationOf(cfg.tls)).toBe(3_600_000);
    expect(rotationOf(withTls().tls)).toBe(12 * 3_600_000); // no tls section: the default
    const source = ownTickets(cfg.tls);
    const ctx = tls.createSecureContext();
    source.keys.adopt(ctx);
    const before = keysOf(ctx);
    vi.advanceTimersByTime(3_600_000);
    expect(keysOf(ctx)).not.toEqual(before);
    source.stop();
  });
});

describe('config', () => {
  it('tls.sessionTickets defaults on, ticketRotation to 12h, from 1s to 7d', () => {
    expect(withTls({}).tls).toMatchObject({ sessionTickets: true, ticketRotation: 12 * 3_600_000 });
    expect(() => withTls({ ticketRotation: '500ms' })).toThrow(/at least 1s/);
    expect(() => withTls({ ticketRotation: '8d' })).toThrow(/at most 7d/);
  });
});
