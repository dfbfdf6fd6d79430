// The front-door check on a hand-moved clock: one private address sending most logins is
// reported once per episode; public addresses, mixes and small samples are not.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { FrontDoor, privateAddress, privateAddressGeneral, type SingleSource } from '../../src/server/front-door.js';

function tracker() {
  const clock = new ManualClock();
  const reports: SingleSource[] = [];
  const fd = new FrontDoor(clock, (s) => reports.push(s));
  /** n logins from ip, one every `everyMs`. */
  const logins = (ip: string, n: number, everyMs = 1000) => {
    for (let i = 0; i < n; i++) {
      fd.record(ip);
      clock.advance(everyMs);
    }
  };
  return { clock, fd, reports, logins };
}

describe('front door', () => {
  it('private means RFC 1918, ULA, loopback, link-local and CGNAT, IPv4-mapped or not', () => {
    for (const ip of ['10.1.2.3', '172.16.0.1', '192.168.1.1', 'fd00::1', 'fc00::2', '127.0.0.1', '::1', '169.254.1.1', 'fe80::1', '100.64.0.1', '::ffff:10.0.0.1']) {
      expect(privateAddress(ip), ip).not.toBeNull();
    }
    expect(privateAddress('::ffff:10.0.0.1')).toBe('10.0.0.1');
    for (const ip of ['8.8.8.8', '100.128.0.1', '2001:db8::1', '2a00:1450::1', 'not an ip']) expect(privateAddress(ip), ip).toBeNull();
  });

  it('the IPv4 path answers as ipaddr.js does, at every range edge and on random addresses', () => {
    const edges = [[9, 255], [10, 0], [10, 255], [11, 0], [126, 255], [127, 0], [127, 255], [128, 0], [172, 15], [172, 16], [172, 31], [172, 32], [192, 167], [192, 168], [192, 169],
      [169, 253], [169, 254], [169, 255], [100, 63], [100, 64], [100, 127], [100, 128], [0, 0], [255, 255]];
    const ips = edges.map(([a, b]) => `${a}.${b}.1.2`);
    let seed = 7;
    const octet = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 256;
    for (let i = 0; i < 5000; i++) ips.push(`${octet()}.${octet()}.${octet()}.${octet()}`);
    for (const ip of ips) {
      expect(privateAddress(ip), ip).toBe(privateAddressGeneral(ip));
      expect(privateAddress(`::ffff:${ip}`), ip).toBe(privateAddressGeneral(`::ffff:${ip}`));
    }
  });

  it('a load balancer without PROXY: reported once, after enough logins', () => {
    const { fd, reports, logins } = tracker();
    logins('10.0.0.5', 49);
    expect(fd.suspicious).toBeNull(); // under 50 logins: says nothing yet
    logins('10.0.0.5', 200);
    expect(fd.suspicious).toEqual({ ip: '10.0.0.5' });
    expect(reports).toEqual([{ ip: '10.0.0.5', logins: 50, share: 1 }]);
  });

  it('public clients, a mix of private ones, or a private source under the share: nothing', () => {
    const { fd, reports, logins } = tracker();
    for (let i = 0; i < 300; i++) logins(`203.0.113.${i % 200}`, 1);
    logins('198.51.100.7', 300); // one public address (an office NAT) is not a front door
    for (let i = 0; i < 300; i++) logins(`10.0.${i % 7}.1`, 1); // an intranet of many clients
    for (let i = 0; i < 300; i++) logins(i % 4 === 0 ? '198.51.100.1' : '10.9.9.9', 1); // 75%
    expect(fd.suspicious).toBeNull();
    expect(reports).toEqual([]);
  });

  it('one report per episode: it ends when the mix changes, and a new episode reports again', () => {
    const { fd, reports, logins } = tracker();
    logins('192.168.0.2', 100);
    for (let i = 0; i < 20; i++) logins(`203.0.113.${i}`, 1); // a few direct clients: still most
    logins('192.168.0.2', 100);
    expect(reports).toHaveLength(1);
    for (let i = 0; i < 400; i++) logins(`203.0.113.${i % 250}`, 1); // PROXY fixed: clients appear
    expect(fd.suspicious).toBeNull();
    logins('fd00::7', 400);
    expect(reports.map((r) => r.ip)).toEqual(['192.168.0.2', 'fd00::7']);
  });

  it('the window: old logins are forgotten, but a quiet night does not end an episode', () => {
    const { clock, fd, reports, logins } = tracker();
    logins('10.0.0.5', 30, 60_000); // 30 logins over 30 minutes: never 50 in 10 minutes
    expect(fd.suspicious).toBeNull();
    logins('10.0.0.5', 60);
    expect(fd.suspicious).not.toBeNull();
    clock.advance(8 * 3_600_000);
    expect(fd.suspicious).toEqual({ ip: '10.0.0.5' });
    expect(fd.tracked).toEqual({ logins: 0, addresses: 0 });
    expect(reports).toHaveLength(1);
  });

  it('memory stays bounded: the sample is the latest logins, whatever the traffic', () => {
    const { fd, logins } = tracker();
    for (let i = 0; i < 50_000; i++) logins(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1, 1);
    expect(fd.tracked).toEqual({ logins: 256, addresses: 256 });
    expect(fd.suspicious).toBeNull();
  });
});
