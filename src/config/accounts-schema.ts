// history, notify: what mailgate keeps per account (its login history, the prints of its
// last passwords) and whom it tells about it (limits/history.ts). Pure.
import { z } from 'zod';
import { duration, MAX_TTL_MS } from './fields.js';

export const history = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Keep a login history per account (GET /api/v1/history?user=).'),
    keep: duration('How long an entry is kept after its last login.', MAX_TTL_MS).prefault('30d'),
    maxEntries: z.number().int().min(1).max(1000).default(50).describe('Entries kept per account; the one seen least lately goes first.'),
  })
  .prefault({})
  .describe('Per account: its logins deduplicated by (client network: the /24 or /64, protocol, result, the IMAP ID name a client sends), with count, first and last seen. Accounts are keyed hashes; addresses are cut to their network.');

/** An IMAP resp-text (RFC 9051 §9): printable, no "]" (it would end the [ALERT] code early). */
const alertText = z.string().regex(/^[\x20-\x5c\x5e-\x7e]{1,200}$/, 'expected up to 200 printable ASCII characters without "]"');

export const notify = z
  .strictObject({
    newNetwork: z.boolean().default(false).describe('Webhook event new-network: a first successful login from a network not in the account\'s history (one with a history only).'),
    retiredPassword: z.boolean().default(false).describe('Webhook event retired-password: a login with a password that succeeded before but was replaced by a newer one.'),
    passwords: z.number().int().min(2).max(10).default(3).describe('How many of the passwords that succeeded last are remembered per account (keyed prints, never the password).'),
    imapAlert: alertText
      .optional()
      .describe('With retiredPassword: the owner\'s next successful IMAP login gets "* OK [ALERT] <this>" before its tagged OK, once per event (RFC 9051 §7.1). Absent: no ALERT line.'),
  })
  .describe('Telling operators (alerts.webhooks) and users about their accounts. Off by default.');

export type HistoryConfig = z.output<typeof history>;
export type NotifyConfig = z.output<typeof notify>;
