// MaxMind-format databases for tests, built by MaxMind's own writer (Debian's
// libmaxmind-db-writer-perl) in the shapes GeoLite2-ASN and GeoLite2-Country use. Writes files
// in the directory it is given; no sockets.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export type MmdbKind = 'asn' | 'country';

/** A network's value: an ASN (asn) or an ISO code (country), or a record written as is (to
 *  write shapes such as a country database's registered_country without country). */
export type MmdbValue = number | string | Record<string, unknown>;

export interface MmdbOptions {
  /** File name in the directory (default: `<kind>.mmdb`). */
  file?: string;
  /** The metadata's database_type (default: GeoLite2-ASN / GeoLite2-Country). */
  type?: string;
  /** ip_version 4 writes an IPv4-only tree (default 6, IPv4 aliased into it as MaxMind does). */
  ipVersion?: 4 | 6;
}

const COUNTRY_NAMES: Record<string, string> = { NL: 'Netherlands', DE: 'Germany', US: 'United States' };

/** The perl writer, fed on stdin a JSON {type, ipVersion, networks: [[cidr, record], …]}.
 *  remove_reserved_networks is off: the tests map TEST-NETs and 2001:db8::/32, which the
 *  writer otherwise drops as reserved. */
const WRITER = String.raw`
use strict; use warnings;
use JSON::PP; use MaxMind::DB::Writer::Tree;
my ($out) = @ARGV;
my $spec = decode_json(do { local $/; binmode STDIN; <STDIN> });
my %types = (
  autonomous_system_number => 'uint32', autonomous_system_organization => 'utf8_string',
  continent => 'map', country => 'map', registered_country => 'map', code => 'utf8_string',
  iso_code => 'utf8_string', names => 'map', geoname_id => 'uint32', is_in_european_union => 'boolean',
  map { $_ => 'utf8_string' } qw(de en es fr ja pt-BR ru zh-CN),
);
my $v6 = $spec->{ipVersion} == 6;
my $tree = MaxMind::DB::Writer::Tree->new(
  ip_version => $spec->{ipVersion}, record_size => 24, database_type => $spec->{type},
  languages => ['en'], description => { en => 'mailgate test database' },
  ($v6 ? (alias_ipv6_to_ipv4 => 1) : ()), merge_strategy => 'none', remove_reserved_networks => 0,
  map_key_type_callback => sub { $types{$_[0]} // die "no type for key $_[0]" },
);
$tree->insert_network($_->[0], $_->[1]) for @{$spec->{networks}};
open my $fh, '>:raw', $out or die "$out: $!"; $tree->write_tree($fh); close $fh or die "$out: $!";
`;

function record(kind: MmdbKind, value: MmdbValue): Record<string, unknown> {
  if (typeof value === 'object') return value;
  if (kind === 'asn') return { autonomous_system_number: Number(value), autonomous_system_organization: `Test AS${value}` };
  const code = String(value);
  return { country: { iso_code: code, names: { en: COUNTRY_NAMES[code] ?? code } } };
}

/** Writes a database mapping each CIDR of `entries` and returns its path. */
export function writeMmdb(dir: string, kind: MmdbKind, entries: Record<string, MmdbValue>, opts: MmdbOptions = {}): string {
  const path = join(dir, opts.file ?? `${kind}.mmdb`);
  const spec = {
    type: opts.type ?? (kind === 'asn' ? 'GeoLite2-ASN' : 'GeoLite2-Country'),
    ipVersion: opts.ipVersion ?? 6,
    networks: Object.entries(entries).map(([cidr, v]) => [cidr, record(kind, v)]),
  };
  execFileSync('perl', ['-e', WRITER, path], { input: JSON.stringify(spec), stdio: ['pipe', 'ignore', 'pipe'] });
  return path;
}
