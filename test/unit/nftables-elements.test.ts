// The elements the nftables mirror writes for a list of bans (pure): canonical text, the IPv4
// set for IPv4-mapped addresses, one element per address, none inside a wider one.
import { describe, expect, it } from 'vitest';
import type { Ban } from '../../src/integrations/ban-feed.js';
import { elementOf, wanted } from '../../src/integrations/nftables.js';

const NOW = 1_700_000_000_000;
const ban = (cidr: string, untilMs: number, firewall = true): Ban => ({ key: `r:r:ip:${cidr}`, rule: 'r', kind: 'ip', cidr, sinceMs: NOW, untilMs, firewall });

describe('nftables elements', () => {
  it('writes addresses bare and networks with their host bits cleared', () => {
    expect(elementOf('192.0.2.7', 1)).toMatchObject({ v6: false, text: '192.0.2.7', bits: 32 });
    expect(elementOf('192.0.2.7/24', 1)).toMatchObject({ v6: false, text: '192.0.2.0/24', bits: 24 });
    expect(elementOf('2001:db8:1:2::/64', 1)).toMatchObject({ v6: true, text: '2001:db8:1:2::/64' });
    expect(elementOf('2001:db8::1/128', 1)).toMatchObject({ v6: true, text: '2001:db8::1' });
    expect(elementOf('::ffff:198.51.100.4', 1)).toMatchObject({ v6: false, text: '198.51.100.4' });
    expect(elementOf('::ffff:198.51.100.0/120', 1)).toMatchObject({ v6: false, text: '198.51.100.0/24' });
    expect(elementOf('grp:tor', 1)).toBeNull();
  });

  it('keeps one element per address (the latest end), none inside a wider one, none a firewall may not drop or already ended', () => {
    const w = wanted(
      [
        ban('192.0.2.5', NOW + 5_000),
        ban('192.0.2.0/24', NOW + 1_000),
        ban('198.51.100.1', NOW + 1_000),
        ban('198.51.100.1', NOW + 9_000),
        ban('198.51.100.2', NOW + 9_000, false),
        ban('198.51.100.3', NOW - 1),
        ban('2001:db8::/48', NOW + 1_000),
        ban('2001:db8:0:1::/64', NOW + 1_000),
        ban('2001:db9::/64', NOW + 1_000),
      ],
      NOW,
    );
    expect([...w.keys()].sort()).toEqual(['192.0.2.0/24', '198.51.100.1', '2001:db8::/48', '2001:db9::/64']);
    expect(w.get('198.51.100.1')!.untilMs).toBe(NOW + 9_000);
  });
});
