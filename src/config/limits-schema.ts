// The limits section of the config: rules, known-good pairs, password hints, shared egress,
// connection limits, sending limits. Pure.
import { z } from 'zod';
import { attackModeSchema } from './attack-mode.js';
import { cidr, duration, MAX_TTL_MS, protocol } from './fields.js';
import { dnsbl, geoip, group } from './groups-schema.js';

/** password: a keyed, truncated fingerprint of the password tried (spraying across networks). */
export const RULE_KEYS = ['ip', 'user', 'ip+user', 'password'] as const;
export const rule = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).describe('Rule name, used in logs and metrics (never shown to clients).'),
  key: z
    .enum(RULE_KEYS)
    .describe('What is counted: ip | user | ip+user | password (a keyed, truncated fingerprint of the password tried, for spraying: with count: failures and distinct: user).'),
  count: z.enum(['attempts', 'failures']).describe('attempts: every login that passed the check; failures: logins the backend rejected.'),
  limit: z.number().int().min(1).describe('Refuse once the count reaches this within the window.'),
  window: duration('Counter lifetime, started by the first hit.', MAX_TTL_MS),
  block: duration('Refuse the key for this long from the moment the limit is reached (default: until the window ends).', MAX_TTL_MS)
    // 0 would mean "no block" to Redis and "a block that ends at once" to the memory store.
    .refine((ms) => ms > 0, { message: 'expected a block longer than 0 (leave block out for none)' })
    .optional(),
  protocols: z.array(protocol).min(1).optional().describe('Protocols the rule applies to (default: all).'),
  only: z.array(z.string()).min(1).optional().describe('Apply the rule only to clients in one of these limits.groups (stricter limits for them).'),
  except: z.array(z.string()).min(1).optional().describe('Apply the rule to every client but those in one of these limits.groups (looser limits for them); an address an asn/country group cannot place (private, or not in the database) counts as in it, never as foreign.'),
  distinct: z
    .enum(['ip', 'user'])
    .optional()
    .describe('Count distinct IPs (with key: user, or key: ip with a prefix: the addresses failing inside it) or distinct users (with key: ip or password) that failed, not events. Needs count: failures.'),
  prefix: z
    .strictObject({
      ipv4: z.number().int().min(8).max(32).optional().describe('IPv4 clients are counted per network of this length.'),
      ipv6: z.number().int().min(8).max(128).optional().describe('IPv6 clients are counted per network of this length.'),
    })
    .optional()
    .describe('key: ip only: count per wider network instead of per client (failures spreading inside a /24 or a /48); the rule applies only to the families named. A success from the network lifts its count and block.'),
  delay: z
    .strictObject({
      base: duration('First delay.', 60_000),
      max: duration('Cap of the doubling delay.', 60_000),
    })
    .optional()
    .describe('Tarpit: failed logins on this key are answered after base, doubling per failure, up to max.'),
  blockGrowth: z.number().min(1).max(100).optional().describe('Multiply the block each time the same key is blocked again within blockMemory.'),
  blockMemory: duration('How long a key\'s past blocks count toward blockGrowth.', MAX_TTL_MS).prefault('1d'),
  blockMax: duration('Cap of a grown block.', MAX_TTL_MS).optional(),
})
  .superRefine((r, ctx) => {
    if (r.distinct && r.count !== 'failures') ctx.addIssue({ code: 'custom', path: ['distinct'], message: 'distinct needs count: failures' });
    if (r.distinct === 'ip' && !(r.key === 'user' || (r.key === 'ip' && r.prefix))) {
      ctx.addIssue({ code: 'custom', path: ['distinct'], message: 'distinct: ip needs key: user, or key: ip with a prefix' });
    }
    if (r.distinct === 'user' && r.key !== 'ip' && r.key !== 'password') ctx.addIssue({ code: 'custom', path: ['distinct'], message: 'distinct: user needs key: ip or password' });
    if (r.key === 'password' && (r.count !== 'failures' || r.distinct !== 'user')) {
      ctx.addIssue({ code: 'custom', path: ['key'], message: 'key: password needs count: failures and distinct: user (accounts a wrong password was tried against)' });
    }
    if (r.prefix && r.key !== 'ip') ctx.addIssue({ code: 'custom', path: ['prefix'], message: 'prefix needs key: ip' });
    if (r.prefix && r.prefix.ipv4 === undefined && r.prefix.ipv6 === undefined) ctx.addIssue({ code: 'custom', path: ['prefix'], message: 'name ipv4 and/or ipv6' });
    if (r.delay && r.delay.max < r.delay.base) ctx.addIssue({ code: 'custom', path: ['delay', 'max'], message: 'must be at least delay.base' });
    if ((r.blockGrowth !== undefined || r.blockMax !== undefined) && r.block === undefined) {
      ctx.addIssue({ code: 'custom', path: ['block'], message: 'blockGrowth and blockMax need block' });
    }
  });

/** What an authenticated account may send through submission (limits/sending.ts). mox's
 *  defaults for an account are 1,000 messages and 200 first-time recipients a day. */
export const sending = z
  .strictObject({
    messagesPerDay: z.number().int().min(1).optional().describe('Messages an account may have accepted by the backend per window; the next MAIL FROM gets 451 4.7.1 (unset: not limited).'),
    recipientsPerDay: z.number().int().min(1).optional().describe('Recipients of accepted messages per window (each RCPT TO counts); the RCPT TO that would cross it gets 451 4.7.1 (unset: not limited).'),
    newRecipientsPerDay: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('First-time recipients per window: addresses the account has not sent to within knownRecipientsFor. A stolen account sends to strangers, its owner mostly to the same people (unset: not limited).'),
    window: duration('What the limits count over: a fixed window started by the first message counted (a day, as the names say, unless changed).', MAX_TTL_MS).prefault('1d'),
    knownRecipientsFor: duration('A recipient the account sent to within this is not a first-time recipient.', MAX_TTL_MS).prefault('30d'),
    maxKnownRecipients: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(10_000)
      .describe('Recipients remembered per account (keyed prints, never the addresses); past it the one sent to least lately is forgotten (and would count as new again).'),
    text: z
      .string()
      .regex(/^[\x20-\x7e]{1,200}$/, 'expected 1 to 200 printable ASCII characters (it goes into an SMTP reply line)')
      .default('Daily sending limit reached')
      .describe('The refusal\'s text: the client gets "451 4.7.1 <text> (<which limit>); try again in <time>".'),
  })
  .superRefine((s, ctx) => {
    // Counts are kept windowMs and recipients known for knownRecipientsFor: a shorter memory
    // than the window would let the same recipient be "first-time" twice in one window.
    if (s.knownRecipientsFor < s.window) ctx.addIssue({ code: 'custom', path: ['knownRecipientsFor'], message: 'must be at least window' });
  })
  .describe('Sending limits per authenticated account on smtp listeners (a stolen password on submission): counted in the store, shared through Redis. Off when absent.');

export type SendingConfig = z.output<typeof sending>;

export const limits = z
  .strictObject({
    keySecret: z
      .string()
      .min(16, 'expected at least 16 characters')
      .optional()
      .describe('HMAC key for user names in counter keys; same on every instance. Or the MAILGATE_KEY_SECRET environment variable. Required with store.type redis.'),
    trustedNetworks: z.array(cidr).default([]).describe('CIDRs never throttled.'),
    deniedNetworks: z
      .array(cidr)
      .default([])
      .describe("CIDRs turned away at connect with the protocol's permanent refusal, before anything is read: networks an operator bans by hand (behind a load balancer only mailgate sees the client's address). Applied on reload; trustedNetworks do not override it."),
    trustedProxies: z.array(cidr).default([]).describe('CIDRs of load balancers allowed to send a PROXY header to listeners with proxyProtocol: true; connections from elsewhere are closed.'),
    ipv6Prefix: z.number().int().min(1).max(128).default(64).describe('IPv6 clients are grouped by this prefix length.'),
    maxAuthAttempts: z.number().int().min(1).max(100).default(3).describe('Failed logins on one connection before it is closed.'),
    // As nginx max_errors; Dovecot closes after 3 to 10.
    maxBadCommands: z.number().int().min(1).max(1000).default(10).describe('Bad commands before login, then goodbye and close.'),
    rules: z.array(rule).default([]).describe('Checked in order, ip rules before user rules.'),
    groups: z.array(group).default([]).describe('Address groups rules narrow to (only, except) and that may count as one client (together).'),
    geoip: geoip.optional(),
    dnsbl,
    mode: z.enum(['enforce', 'dry-run']).default('enforce').describe('dry-run: evaluate and log what would be refused, refuse nothing.'),
    knownGood: z
      .strictObject({
        ttl: duration('How long a successful (user, client network) pair is remembered.', MAX_TTL_MS),
        ipv4Prefix: z.number().int().min(8).max(32).default(24).describe('IPv4 clients count as the same place within this prefix (mobile and DSL addresses move within a network).'),
      })
      .optional()
      .describe('Known-good pairs: no rule but ip+user ones refuses a user from a network they logged in from before. Off when absent.'),
    passwordHint: z
      .strictObject({
        ttl: duration('How long the hint of the last password that succeeded is kept (refreshed by every success).', MAX_TTL_MS),
        bits: z.number().int().min(16).max(24).default(24).describe('Bits of the keyed hash kept: few enough that a hint is useless for cracking, enough to let one wrong guess in 16 million through.'),
      })
      .optional()
      .describe('Password hints: while an account or address is under protection, a login whose password matches the hint of the last one that succeeded for the account still reaches the backend (the owner travelling); everything else gets the temporary failure. Off when absent.'),
    attackMode: attackModeSchema.describe('Attack mode: when the global rate of rejected logins jumps far above its learned normal (a distributed attack), logins from unknown (user, network) pairs whose password does not match the hint are refused without asking the backend.'),
    sharedEgress: z
      .strictObject({
        users: z.number().int().min(2).max(1000).default(5).describe('Distinct users who logged in successfully from one address that make it a shared address.'),
        window: duration('How long those successes are remembered.', MAX_TTL_MS).prefault('7d'),
      })
      .prefault({})
      .describe('An address from which several users log in successfully (office NAT, webmail, CGNAT) is never refused at connect: its blocks refuse only unknown pairs at login, so one infected machine cannot lock its colleagues out.'),
    sending: sending.optional(),
    dedupeFailures: z.boolean().default(true).describe('The same wrong password for the same user from the same IP counts once per window in failure rules.'),
    connections: z
      .strictObject({
        perIp: z.number().int().min(1).default(20).describe('Concurrent connections per client IP (after ipv6Prefix grouping).'),
        total: z.number().int().min(1).default(10_000).describe('Concurrent connections in total; at the limit the oldest not logged in is dropped.'),
      })
      .prefault({})
      .describe('Connection limits, checked when a client connects.'),
  })
  .superRefine((l, ctx) => {
    const names = new Set<string>();
    l.groups.forEach((g, i) => {
      if (names.has(g.name)) ctx.addIssue({ code: 'custom', path: ['groups', i, 'name'], message: `duplicate group name "${g.name}"` });
      names.add(g.name);
      if (g.asn && !l.geoip?.asn) ctx.addIssue({ code: 'custom', path: ['groups', i, 'asn'], message: 'asn groups need limits.geoip.asn (an ASN database)' });
      if (g.country && !l.geoip?.country) ctx.addIssue({ code: 'custom', path: ['groups', i, 'country'], message: 'country groups need limits.geoip.country (a country database)' });
    });
    l.rules.forEach((r, i) => {
      if (r.only && r.except) ctx.addIssue({ code: 'custom', path: ['rules', i, 'except'], message: 'use only or except, not both' });
      for (const k of ['only', 'except'] as const) {
        r[k]?.forEach((n, j) => {
          if (!names.has(n)) ctx.addIssue({ code: 'custom', path: ['rules', i, k, j], message: `no group named "${n}" in limits.groups (have: ${[...names].join(', ') || 'none'})` });
        });
      }
    });
  })
  .prefault({})
  .describe('Login limits: who is counted, how, and for how long.');
