// limits.groups, limits.geoip, limits.dnsbl: address groups fed by lists, files, ASN/country
// databases and DNS blocklists, that rules narrow to (only/except) and that may count as one
// client (together). Pure.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort } from './address.js';
import { cidr, duration, hostPort } from './fields.js';

/** One DNS blocklist: the zone, which answers mean "listed", its weight. */
const dnsblList = z.strictObject({
  zone: z
    .string()
    .regex(/^([A-Za-z0-9_]([A-Za-z0-9_-]{0,62})\.)+[A-Za-z0-9][A-Za-z0-9-]{0,62}\.?$/, 'expected a DNS zone like authbl.example.org')
    .transform((z) => z.replace(/\.$/, '').toLowerCase())
    .describe('The list\'s zone: an address a.b.c.d is looked up as d.c.b.a.<zone> (IPv6: nibbles, RFC 5782).'),
  answers: z
    .array(z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'expected an answer address in 127.0.0.0/8'))
    .min(1)
    .optional()
    .describe('Answers that mean listed (default: any in 127.0.0.0/8 but 127.0.0.1 and 127.255.255.x, which lists send when they refuse the query).'),
  weight: z.number().min(0).max(100).default(1).describe('Added to the score when the address is listed here.'),
});

const dnsblSource = z
  .union([
    dnsblList,
    z.strictObject({
      lists: z.array(dnsblList).min(1).describe('Several lists, each with its weight.'),
      threshold: z.number().min(0).default(1).describe('The address is in the group when the weights of the lists that list it add up to this.'),
    }),
  ])
  .transform((d) => ('lists' in d ? d : { lists: [d], threshold: d.weight }));

export const group = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).describe('Group name, used by rules (only/except), logs and metrics.'),
    cidrs: z.array(cidr).min(1).optional().describe('Addresses and networks of the group.'),
    file: z.string().min(1).optional().describe('A file of addresses or CIDRs, one a line ("#" and ";" start comments; the Tor project\'s exit lists and Spamhaus DROP read as distributed). Read again on SIGHUP and when it changes; a broken file keeps the previous contents.'),
    asn: z.array(z.number().int().min(0).max(4294967295)).min(1).optional().describe('Autonomous system numbers (limits.geoip.asn).'),
    country: z
      .array(z.string().regex(/^[A-Za-z]{2}$/, 'expected an ISO 3166-1 alpha-2 code like NL').transform((c) => c.toUpperCase()))
      .min(1)
      .optional()
      .describe('Countries, ISO 3166-1 alpha-2 (limits.geoip.country). A private, loopback or unknown address is in no country.'),
    dnsbl: dnsblSource.optional().describe('DNS blocklists: {zone, answers?, weight?} or {lists: [...], threshold}; looked up from connect, in parallel with the rest, within limits.dnsbl.timeout.'),
    together: z.boolean().default(false).describe('Every address of the group counts as one client for ip, ip+user and prefix rules (Tor exits: rotating the exit buys nothing).'),
  })
  .superRefine((g, ctx) => {
    const sources = (['cidrs', 'file', 'asn', 'country', 'dnsbl'] as const).filter((k) => g[k] !== undefined);
    if (sources.length !== 1) ctx.addIssue({ code: 'custom', message: `expected exactly one source of cidrs, file, asn, country or dnsbl (got ${sources.join(', ') || 'none'})` });
  });

export const geoip = z
  .strictObject({
    asn: z.string().min(1).optional().describe('MaxMind-format ASN database (GeoLite2-ASN.mmdb, dbip-asn-lite.mmdb).'),
    country: z.string().min(1).optional().describe('MaxMind-format country database (GeoLite2-Country.mmdb, dbip-country-lite.mmdb).'),
  })
  .describe('Local databases for asn and country groups; read again on SIGHUP and when the file changes.');

export const dnsbl = z
  .strictObject({
    servers: z
      .array(hostPort.refine((s) => isIP(parseHostPort(s)?.host ?? '') !== 0, 'expected an IP address and port (127.0.0.1:53, [::1]:53): no name can be resolved before DNS is asked'))
      .min(1)
      .optional()
      .describe('DNS servers to ask, IP:port (default: those of /etc/resolv.conf).'),
    timeout: duration('Longest a login waits for a list; after it the address counts as not listed.').prefault('300ms'),
    cacheSize: z.number().int().min(100).max(10_000_000).default(100_000).describe('Answers kept (each for its TTL).'),
  })
  .prefault({})
  .describe('How DNS blocklists are asked.');

export type GroupConfig = z.output<typeof group>;
export type GeoipConfig = z.output<typeof geoip>;
export type DnsblConfig = z.output<typeof dnsbl>;
export type DnsblSource = NonNullable<GroupConfig['dnsbl']>;
