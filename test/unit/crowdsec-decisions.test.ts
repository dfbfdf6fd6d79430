// CrowdSec's decision set (what the bouncer and a worker's copy answer from) and the relay's
// pieces: pure, on a manual clock.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { DecisionSet, parseGoDuration, type CsDecision, type CsDelta } from '../../src/integrations/crowdsec-decisions.js';
import { DecisionReplica, RELAY_CHUNK, relayDecisions } from '../../src/integrations/crowdsec-relay.js';
import type { CrowdsecBouncer } from '../../src/integrations/crowdsec-bouncer.js';

const clock = new ManualClock();
let nextId = 1;
const dec = (value: string, forMs = 3_600_000, extra: Partial<CsDecision> = {}): CsDecision => ({
  id: nextId++,
  scope: value.includes('/') ? 'range' : 'ip',
  value,
  origin: 'cscli',
  scenario: 'manual',
  untilMs: clock.now() + forMs,
  ...extra,
});

describe('parseGoDuration', () => {
  it("reads Go's time.Duration text as the LAPI writes it", () => {
    expect(parseGoDuration('3h59m50.1s')).toBeCloseTo(14_390_100);
    expect(parseGoDuration('59m59.730829334s')).toBeCloseTo(3_599_730.829334);
    expect(parseGoDuration('-13.175469ms')).toBeCloseTo(-13.175469);
    expect(parseGoDuration('1h')).toBe(3_600_000);
    expect(parseGoDuration('500µs')).toBeCloseTo(0.5);
    expect(parseGoDuration('0')).toBe(0);
    for (const bad of ['', 'h', '1x', '1h 2m', 'forever', '1.h']) expect(parseGoDuration(bad)).toBeNull();
  });
});

describe('DecisionSet', () => {
  it('refuses an address, a range (IPv4 and IPv6), an IPv4-mapped spelling; nobody else', () => {
    const set = new DecisionSet(clock);
    set.apply({ add: [dec('192.0.2.7'), dec('198.51.100.0/24'), dec('2001:db8:1::/48'), dec('2001:DB8::0:9')], remove: [] });
    expect(set.refuses('192.0.2.7')).toMatchObject({ origin: 'cscli', scenario: 'manual' });
    expect(set.refuses('::ffff:192.0.2.7')).not.toBeNull();
    expect(set.refuses('198.51.100.200')).not.toBeNull();
    expect(set.refuses('2001:db8:1:ffff::1')).not.toBeNull();
    expect(set.refuses('2001:db8::9')).not.toBeNull();
    for (const ip of ['192.0.2.8', '198.51.101.1', '2001:db8:2::1', 'not an address', '']) expect(set.refuses(ip)).toBeNull();
  });

  it('answers the decision that ends last; ended decisions refuse nobody; deletes by id', () => {
    const set = new DecisionSet(clock);
    const short = dec('192.0.2.1', 60_000, { scenario: 'short' });
    const long = dec('192.0.2.0/24', 600_000, { scenario: 'long' });
    set.apply({ add: [short, long], remove: [] });
    expect(set.refuses('192.0.2.1')?.scenario).toBe('long');
    set.apply({ add: [], remove: [long.id] });
    expect(set.refuses('192.0.2.1')?.scenario).toBe('short');
    expect(set.refuses('192.0.2.2')).toBeNull();
    clock.advance(60_001);
    expect(set.refuses('192.0.2.1')).toBeNull();
    clock.advance(60_000); // the next change sweeps it
    set.apply({ add: [], remove: [] });
    expect(set.size).toBe(0);
  });

  it('a reset replaces the whole set; an id added again replaces its decision', () => {
    const set = new DecisionSet(clock);
    const a = dec('192.0.2.1');
    set.apply({ add: [a, dec('192.0.2.2')], remove: [] });
    set.apply({ add: [{ ...a, value: '192.0.2.3' }], remove: [] });
    expect(set.refuses('192.0.2.1')).toBeNull();
    expect(set.refuses('192.0.2.3')).not.toBeNull();
    set.apply({ reset: true, add: [dec('192.0.2.9')], remove: [] });
    expect(set.all().map((d) => d.value)).toEqual(['192.0.2.9']);
  });

  it('holds at most its cap; past it the newest are dropped and counted', () => {
    const set = new DecisionSet(clock, 3);
    set.apply({ add: ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'].map((v) => dec(v)), remove: [] });
    expect(set.size).toBe(3);
    expect(set.dropped).toBe(1);
    expect(set.refuses('192.0.2.4')).toBeNull();
  });

  it('a value that is no address or network is skipped, not thrown', () => {
    const set = new DecisionSet(clock);
    set.apply({ add: [dec('example.org', 60_000, { scope: 'ip' }), dec('10.0.0.0/99'), dec('10.0.0.1')], remove: [] });
    expect(set.size).toBe(1);
  });
});

describe('the relay (primary to workers)', () => {
  it('gives a worker the full set in pieces, then every change; the copy answers alike', () => {
    const listeners: ((d: CsDelta) => void)[] = [];
    const decisions = new DecisionSet(clock);
    const bouncer = { decisions, onChange: (fn: (d: CsDelta) => void) => listeners.push(fn) } as unknown as CrowdsecBouncer;
    const many = Array.from({ length: RELAY_CHUNK + 5 }, (_, i) => dec(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`));
    decisions.apply({ add: many, remove: [] });
    const notes: CsDelta[] = [];
    const replica = new DecisionReplica(clock);
    const link = { notify: (_op: 'crowdsec', d: CsDelta) => (notes.push(d), replica.apply(d)) };
    const relay = relayDecisions(bouncer, () => [{ link }]);
    relay.welcome(link);
    expect(notes.map((n) => [n.reset ?? false, n.add.length])).toEqual([
      [true, RELAY_CHUNK],
      [false, 5],
    ]);
    expect(replica.refuses('10.0.0.3')).not.toBeNull();
    const removed = many[3]!.id;
    for (const fn of listeners) fn({ add: [dec('192.0.2.77')], remove: [removed] });
    expect(replica.refuses('10.0.0.3')).toBeNull();
    expect(replica.refuses('192.0.2.77')).not.toBeNull();
  });
});
