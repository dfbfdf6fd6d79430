// Parsing of "host:port" listen/connect strings and CIDR lists for the config schema.
// Pure: no sockets.
import ipaddr from 'ipaddr.js';

export interface HostPort {
  host: string;
  port: number;
}

/** "0.0.0.0:1143", "[::]:1143", "localhost:143" → {host, port}; null when malformed. */
export function parseHostPort(input: string): HostPort | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(input);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null; // port 0: any free port (tests)
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && !ipaddr.IPv6.isValid(host)) return null;
  return { host, port };
}

export function isValidCidr(input: string): boolean {
  try {
    ipaddr.parseCIDR(input);
    return true;
  } catch {
    return ipaddr.isValid(input);
  }
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (!ipaddr.isValid(host)) return false;
  const addr = ipaddr.process(host);
  return addr.range() === 'loopback';
}
