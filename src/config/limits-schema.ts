// The limits section of the config: rules, known-good pairs, connection limits. Pure.
import { z } from 'zod';
import { cidr, duration, MAX_TTL_MS, protocol } from './fields.js';

export const RULE_KEYS = ['ip', 'user', 'ip+user'] as const;
export const rule = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).describe('Rule name, used in logs and metrics (never shown to clients).'),
  key: z.enum(RULE_KEYS).describe('What is counted: ip | user | ip+user.'),
  count: z.enum(['attempts', 'failures']).describe('attempts: every login that passed the check; failures: logins the backend rejected.'),
  limit: z.number().int().min(1).describe('Refuse once the count reaches this within the window.'),
  window: duration('Counter lifetime, started by the first hit.', MAX_TTL_MS),
  block: duration('Refuse the key for this long from the moment the limit is reached (default: until the window ends).', MAX_TTL_MS).optional(),
  protocols: z.array(protocol).min(1).optional().describe('Protocols the rule applies to (default: all).'),
  distinct: z
    .enum(['ip', 'user'])
    .optional()
    .describe('Count distinct IPs (with key: user) or distinct users (with key: ip) that failed, not events. Needs count: failures.'),
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
    if (r.distinct === 'ip' && r.key !== 'user') ctx.addIssue({ code: 'custom', path: ['distinct'], message: 'distinct: ip needs key: user' });
    if (r.distinct === 'user' && r.key !== 'ip') ctx.addIssue({ code: 'custom', path: ['distinct'], message: 'distinct: user needs key: ip' });
    if (r.delay && r.delay.max < r.delay.base) ctx.addIssue({ code: 'custom', path: ['delay', 'max'], message: 'must be at least delay.base' });
    if ((r.blockGrowth !== undefined || r.blockMax !== undefined) && r.block === undefined) {
      ctx.addIssue({ code: 'custom', path: ['block'], message: 'blockGrowth and blockMax need block' });
    }
  });

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
    mode: z.enum(['enforce', 'dry-run']).default('enforce').describe('dry-run: evaluate and log what would be refused, refuse nothing.'),
    knownGood: z
      .strictObject({
        ttl: duration('How long a successful (user, client network) pair is remembered.', MAX_TTL_MS),
        ipv4Prefix: z.number().int().min(8).max(32).default(24).describe('IPv4 clients count as the same place within this prefix (mobile and DSL addresses move within a network).'),
      })
      .optional()
      .describe('Known-good pairs: rules keyed on user never refuse a user from a network they logged in from before. Off when absent.'),
    dedupeFailures: z.boolean().default(true).describe('The same wrong password for the same user from the same IP counts once per window in failure rules.'),
    connections: z
      .strictObject({
        perIp: z.number().int().min(1).default(20).describe('Concurrent connections per client IP (after ipv6Prefix grouping).'),
        total: z.number().int().min(1).default(10_000).describe('Concurrent connections in total; at the limit the oldest not logged in is dropped.'),
      })
      .prefault({})
      .describe('Connection limits, checked when a client connects.'),
  })
  .prefault({})
  .describe('Login limits: who is counted, how, and for how long.');
