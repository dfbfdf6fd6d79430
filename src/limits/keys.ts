// Every counter key is built here and only here: client address grouping, user hashing; and
// read back here (parseKey), so one file owns the key grammar both ways.
// Pure apart from the HMAC. User names enter keys only as keyed hashes, never in clear.
import { createHmac, randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { ipv4Int, ipv4Mask, plainIpv4 } from '../config/address.js';
import type { RuleConfig } from '../config/schema.js';

/** Normalise a socket address: IPv4-mapped IPv6 → IPv4; IPv6 grouped by prefix (/64 by
 *  default, since one host usually owns a whole /64), IPv4 by ipv4Prefix (default: the
 *  address itself). Unparseable input is returned as is. */
export function clientKey(address: string, ipv6Prefix: number, ipv4Prefix = 32): string {
  // The common case, an IPv4 socket address, is masked without ipaddr.js's parser: the history
  // asks for its /24 on every login (issue 22: 1.37 -> 0.1-0.2 µs a call, measured).
  const v4 = Number.isInteger(ipv4Prefix) && ipv4Prefix >= 0 && ipv4Prefix <= 32 ? plainIpv4(address) : null;
  if (v4 !== null) return ipv4Prefix === 32 ? v4 : ipv4Network(v4, ipv4Prefix);
  if (!ipaddr.isValid(address)) return address;
  const addr = ipaddr.process(address);
  const bits = addr.kind() === 'ipv4' ? ipv4Prefix : ipv6Prefix;
  const width = addr.kind() === 'ipv4' ? 32 : 128;
  if (addr.kind() === 'ipv4' && bits === 32) return addr.toString();
  const bytes = addr.toByteArray();
  for (let bit = bits; bit < width; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${ipaddr.fromByteArray(bytes).toString()}/${bits}`;
}

/** "a.b.c.0/bits" of a canonical dotted quad (plainIpv4), 0 <= bits < 32: what the ipaddr.js
 *  path writes for it. */
function ipv4Network(v4: string, bits: number): string {
  // Unsigned 32-bit arithmetic: the top bit stays a value, never a sign.
  const masked = (ipv4Int(v4) & ipv4Mask(bits)) >>> 0;
  return `${masked >>> 24}.${(masked >>> 16) & 0xff}.${(masked >>> 8) & 0xff}.${masked & 0xff}/${bits}`;
}

/** User hashes remembered (one login asks for the same one several times); the memo is
 *  emptied when full, so a spray of made-up names costs what it did without it. Only names a
 *  person could have are kept: at most USER_HASH_MEMO × MEMO_NAME_CHARS characters (~2.5 MB),
 *  whatever length attackers send. */
const USER_HASH_MEMO = 10_000;
const MEMO_NAME_CHARS = 128;

export class KeyBuilder {
  private readonly secret: Buffer;
  private readonly hashes = new Map<string, string>();

  /** secret: HMAC key for user names; random per process when not configured. */
  constructor(secret?: string) {
    this.secret = secret ? Buffer.from(secret, 'utf8') : randomBytes(32);
  }

  userHash(canonicalUser: string): string {
    let h = this.hashes.get(canonicalUser);
    if (h === undefined) {
      h = createHmac('sha256', this.secret).update(canonicalUser, 'utf8').digest('base64url').slice(0, 22);
      if (canonicalUser.length <= MEMO_NAME_CHARS) {
        if (this.hashes.size >= USER_HASH_MEMO) this.hashes.clear();
        this.hashes.set(canonicalUser, h);
      }
    }
    return h;
  }

  /** A known-good (client network, user) pair. */
  knownGoodKey(network: string, canonicalUser: string): string {
    return `kg:${network}:${this.userHash(canonicalUser)}`;
  }

  /** Keyed hash of one (client, user, password) triple, for stale-password dedupe: equal
   *  for the same wrong password, useless to anyone without the secret. */
  fingerprint(client: string, canonicalUser: string, password: Buffer): string {
    return createHmac('sha256', this.secret).update('pw\0').update(client).update('\0').update(canonicalUser).update('\0').update(password).digest('base64url').slice(0, 22);
  }

  /** The password hint of an account: a keyed hash of (user, password) cut to `bits` bits.
   *  It only filters which logins reach the backend while the account is under protection
   *  (the backend still verifies); so few bits match 2^bits passwords each that a stolen hint
   *  and key narrow nothing an attacker could use offline (SECURITY.md). Hex, never logged. */
  passwordHint(canonicalUser: string, password: Buffer, bits: number): string {
    const h = createHmac('sha256', this.secret).update('hint\0').update(canonicalUser, 'utf8').update('\0').update(password).digest();
    return (h.readUIntBE(0, 3) >>> (24 - bits)).toString(16);
  }

  /** A sprayed password, as rule keys name it: a keyed hash cut to 48 bits (8 base64url
   *  characters), enough to tell apart the passwords of one window, never the password. */
  passwordKey(password: Buffer): string {
    return createHmac('sha256', this.secret).update('spray\0').update(password).digest('base64url').slice(0, 8);
  }

  /** The key under which an account's password hint is kept. */
  hintKey(canonicalUser: string): string {
    return `h:${this.userHash(canonicalUser)}`;
  }

  /** An account's login history (limits/history.ts): one entry per (network, protocol, result). */
  historyKey(canonicalUser: string): string {
    return `lh:${this.userHash(canonicalUser)}`;
  }

  /** The keyed prints of an account's passwords that succeeded lately (retired-password). */
  printsKey(canonicalUser: string): string {
    return `lp:${this.userHash(canonicalUser)}`;
  }

  /** An account's alerts waiting for its next IMAP login ([ALERT]). */
  pendingKey(canonicalUser: string): string {
    return `la:${this.userHash(canonicalUser)}`;
  }

  /** An account's sending counts (limits/sending.ts): messages, recipients, first-time
   *  recipients in the current window. */
  sendingKey(canonicalUser: string): string {
    return `sc:${this.userHash(canonicalUser)}`;
  }

  /** The recipients an account sent to lately, as recipientPrint's. */
  knownRecipientsKey(canonicalUser: string): string {
    return `sk:${this.userHash(canonicalUser)}`;
  }

  /** A recipient of one account, as its known-recipient set keeps it: a keyed hash of (user,
   *  address), never the address. The address is lowercased whole, local part included:
   *  RFC 5321 §2.4 lets a server tell "Bob" from "bob", but none in use does, and the only cost
   *  of folding them is that a case variant of a known recipient is not first-time (nothing an
   *  attacker gains: first-time is the stricter count). Angle brackets and a source route
   *  (RFC 5321 §4.1.2, ignored by servers) are not part of it. 96 bits: no two of one
   *  account's recipients collide. Never logged. */
  recipientPrint(canonicalUser: string, path: string): string {
    const address = path.trim().replace(/^<(.*)>$/s, '$1').replace(/^@[^:]*:/, '').toLowerCase();
    return createHmac('sha256', this.secret).update('rcpt\0').update(canonicalUser, 'utf8').update('\0').update(address, 'utf8').digest('base64url').slice(0, 16);
  }

  /** A password's print for the retired-password check: a keyed hash of (user, password),
   *  equal for the same password of one account, useless without the secret. Never logged. */
  passwordPrint(canonicalUser: string, password: Buffer): string {
    return createHmac('sha256', this.secret).update('print\0').update(canonicalUser, 'utf8').update('\0').update(password).digest('base64url').slice(0, 16);
  }

  /** The set of users who logged in successfully from one client key (shared egress). */
  successesKey(client: string): string {
    return `se:${client}`;
  }

  /** The counter key of one rule for one attempt (`password`: passwordKey of the attempt's). */
  ruleKey(rule: Pick<RuleConfig, 'name' | 'key'>, ip: string, canonicalUser: string, password = ''): string {
    switch (rule.key) {
      case 'ip':
        return `r:${rule.name}:ip:${ip}`;
      case 'user':
        return `r:${rule.name}:u:${this.userHash(canonicalUser)}`;
      case 'ip+user':
        return `r:${rule.name}:iu:${ip}:${this.userHash(canonicalUser)}`;
      case 'password':
        return `r:${rule.name}:pw:${password}`;
    }
  }
}

/** The parts of a rule key, as ruleKey built it. */
export interface ParsedKey {
  rule: string;
  kind: RuleConfig['key'];
  /** The client key (ip and ip+user keys). */
  ip?: string;
  /** The keyed hash of the canonical user (user and ip+user keys). */
  userHash?: string;
  /** The sprayed password's keyed hash (password keys). */
  password?: string;
}

/** The parts of a key built by KeyBuilder.ruleKey; null for any other key. Rule names never
 *  contain ":" (schema), nor do user hashes (base64url), so an ip+user key splits at its last
 *  ":" even when the client key is IPv6. */
export function parseKey(key: string): ParsedKey | null {
  const m = /^r:([^:]+):(ip|u|iu|pw):(.+)$/.exec(key);
  if (!m) return null;
  const [, rule, kind, rest] = m as unknown as [string, string, string, string];
  if (kind === 'ip') return { rule, kind: 'ip', ip: rest };
  if (kind === 'u') return { rule, kind: 'user', userHash: rest };
  if (kind === 'pw') return { rule, kind: 'password', password: rest };
  const cut = rest.lastIndexOf(':');
  return { rule, kind: 'ip+user', ip: rest.slice(0, cut), userHash: rest.slice(cut + 1) };
}

/** Braces end a Redis hash tag early: kept out of a tag's content (client keys are addresses,
 *  user hashes base64url: neither has any). */
const tagged = (kind: string, subject: string) => `{${kind}:${subject.replace(/[{}]/g, '')}}`;

/** The Redis Cluster hash tag of a key (with its braces): every key of one subject shares a
 *  slot, and subjects spread over the cluster. An address's ip rules and its successes go
 *  under `{i:<client>}` (a wide rule's network is a client key of its own); a user's rules,
 *  ip+user rules, known-good pairs, password hint, history (lh:, lp:, la:) and sending counts
 *  and known recipients (sc:, sk:, one script over both) under `{u:<hash>}`, so the exemptions are
 *  read atomically with the user rules; a sprayed password's under `{p:<key>}`. Any other key
 *  is a subject of its own. */
export function slotTag(key: string): string {
  const p = parseKey(key);
  if (p) return p.userHash !== undefined ? tagged('u', p.userHash) : p.ip !== undefined ? tagged('i', p.ip) : tagged('p', p.password ?? '');
  const kg = /^kg:.+:([^:]+)$/.exec(key);
  if (kg) return tagged('u', kg[1]!);
  if (key.startsWith('h:')) return tagged('u', key.slice(2));
  if (/^(?:l[hpa]|s[ck]):/.test(key)) return tagged('u', key.slice(3));
  if (key.startsWith('se:')) return tagged('i', key.slice(3));
  return tagged('k', key);
}
