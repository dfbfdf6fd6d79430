// Value types the config schema is built from: durations, addresses, protocols. Pure.
import { z } from 'zod';
import { isValidCidr, parseHostPort } from './address.js';
import { parseDuration } from './duration.js';

/** Timers: Node's setTimeout fires at once for anything above 2^31-1 ms (24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** Counter windows and blocks live in the store as TTLs; a year is plenty and stays exact. */
export const MAX_TTL_MS = 366 * 86_400_000;

/** A duration in the file ("90s", "10m", "1h", "7d", "250ms" or integer seconds) → milliseconds. */
export const duration = (doc: string, maxMs = MAX_TIMER_MS) =>
  z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `expected a duration like 90s, 10m, 1h, 7d or integer seconds, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      if (ms > maxMs) {
        ctx.addIssue({ code: 'custom', message: `expected a duration of at most ${Math.floor(maxMs / 86_400_000)}d, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return ms;
    })
    .describe(doc);

export const hostPort = z.string().refine((s) => parseHostPort(s) !== null, {
  message: 'expected host:port (use [::]:port for IPv6)',
});

export const PROTOCOLS = ['imap', 'pop3', 'smtp'] as const;
export const TLS_MODES = ['none', 'starttls', 'implicit'] as const;
export const protocol = z.enum(PROTOCOLS);
export const tlsMode = z.enum(TLS_MODES);
export const cidr = z.string().refine(isValidCidr, { message: 'expected an IP address or CIDR like 10.0.0.0/8' });
