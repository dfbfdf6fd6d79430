// What an authenticated account may send through submission (limits.sending): messages,
// recipients and first-time recipients per window, counted in the store (shared through
// Redis). The splice (backend/smtp-splice.ts) asks at MAIL and RCPT and reports accepted
// messages; this decides and counts. A store that fails or is late never blocks mail: the
// checks answer ok (logged, counted). User names only ever as keyed hashes (keys.ts).
import type { Clock } from '../clock.js';
import type { SendingConfig } from '../config/limits-schema.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { LimitStore, SendingCounts } from '../stores/store.js';
import type { EmitAlert } from './history.js';
import type { KeyBuilder } from './keys.js';

export type SendingLimitName = 'messagesPerDay' | 'recipientsPerDay' | 'newRecipientsPerDay';
export const SENDING_LIMITS = ['messagesPerDay', 'recipientsPerDay', 'newRecipientsPerDay'] as const satisfies readonly SendingLimitName[];

export type SendingVerdict = { ok: true } | { ok: false; limit: SendingLimitName; retryAfterMs: number; reply: Buffer };

/** In the message in progress in this session, already let through. */
export interface Pending {
  recipients: number;
  newRecipients: number;
}

/** The store methods this needs (every store of ours has them; a store without them tracks
 *  nothing, see sendingLimits). */
export type SendingStore = Required<Pick<LimitStore, 'sendingPeek' | 'sendingAdd' | 'sendingReset'>>;

export type SendingMetrics = Pick<Metrics, 'sendingMessages' | 'sendingStoreErrors'>;

/** The longest a MAIL or RCPT waits for the store (behind the store's own deadline: the
 *  resilient wrapper's store.timeout, the IPC channel's), then it passes uncounted. */
export const SENDING_CHECK_TIMEOUT_MS = 2_000;

/** Shortest wait a refusal names (the window ending as it is refused). */
const MIN_RETRY_MS = 60_000;

/** Which count each limit is of, and how a refusal names it. */
const COUNT: Record<SendingLimitName, { of: keyof Omit<SendingCounts, 'ttlMs'>; says: string }> = {
  messagesPerDay: { of: 'messages', says: 'messages' },
  recipientsPerDay: { of: 'recipients', says: 'recipients' },
  newRecipientsPerDay: { of: 'newRecipients', says: 'first-time recipients' },
};

/** "3 hours", "1 hour", "25 minutes": the wait rounded up. */
export function humanWait(ms: number): string {
  if (ms >= 3_600_000) {
    const h = Math.ceil(ms / 3_600_000);
    return h === 1 ? '1 hour' : `${h} hours`;
  }
  const m = Math.max(1, Math.ceil(ms / 60_000));
  return m === 1 ? '1 minute' : `${m} minutes`;
}

/** The whole reply (RFC 3463 4.7.1: delivery not authorized, temporary): the configured text,
 *  which limit, when to try again; never the user. */
export function refusalReply(text: string, limit: SendingLimitName, retryAfterMs: number): Buffer {
  return Buffer.from(`451 4.7.1 ${text} (${COUNT[limit].says}); try again in ${humanWait(retryAfterMs)}\r\n`, 'latin1');
}

function deadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    t.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

/** GET /api/v1/sending: one limit's state. */
export interface SendingLimitView {
  count: number;
  limit: number | null;
  remaining: number | null;
}

export class SendingLimits {
  constructor(
    readonly cfg: SendingConfig,
    private readonly store: SendingStore,
    private readonly keys: KeyBuilder,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly emit: EmitAlert,
    private readonly metrics?: SendingMetrics,
    private readonly timeoutMs = SENDING_CHECK_TIMEOUT_MS,
  ) {}

  /** At MAIL: may this user start another message? */
  async checkMail(user: string): Promise<SendingVerdict> {
    if (this.cfg.messagesPerDay === undefined) return { ok: true };
    const c = await this.peek(user, []);
    if (!c) return { ok: true };
    return this.over('messagesPerDay', c.messages + 1, c.ttlMs);
  }

  /** At RCPT: may this recipient join the message in progress? `print` is the recipient's
   *  keyed print (pass it back to accepted()), `isNew` whether the user has not sent to it
   *  within knownRecipientsFor (false when the store could not tell). */
  async checkRcpt(user: string, path: string, pending: Pending): Promise<SendingVerdict & { print: string; isNew: boolean }> {
    const print = this.keys.recipientPrint(user, path);
    if (this.cfg.recipientsPerDay === undefined && this.cfg.newRecipientsPerDay === undefined) return { ok: true, print, isNew: false };
    const c = await this.peek(user, [print]);
    if (!c) return { ok: true, print, isNew: false };
    const isNew = !c.known[0];
    const recipients = this.over('recipientsPerDay', c.recipients + pending.recipients + 1, c.ttlMs);
    if (!recipients.ok || !isNew) return { ...recipients, print, isNew };
    return { ...this.over('newRecipientsPerDay', c.newRecipients + pending.newRecipients + 1, c.ttlMs), print, isNew };
  }

  /** The backend accepted a message to these recipients (prints from checkRcpt, duplicates
   *  possible): counts it in the store. Fire and forget: never throws, logs store errors;
   *  raises the alert event when this made a limit reached. */
  accepted(user: string, prints: readonly string[]): void {
    this.metrics?.sendingMessages.inc();
    const b = { atMs: this.clock.now(), windowMs: this.cfg.window, knownTtlMs: this.cfg.knownRecipientsFor, knownCap: this.cfg.maxKnownRecipients };
    void this.store
      .sendingAdd(this.keys.sendingKey(user), this.keys.knownRecipientsKey(user), prints, b)
      .then((after) => this.reached(user, after, { messages: 1, recipients: prints.length, newRecipients: after.added }))
      .catch((err: Error) => this.failed('count', err));
  }

  /** GET /api/v1/sending: the counts, each limit and what is left of it, the window left. */
  async view(user: string) {
    const c = await this.store.sendingPeek(this.keys.sendingKey(user), this.keys.knownRecipientsKey(user), [], { atMs: this.clock.now(), knownTtlMs: this.cfg.knownRecipientsFor });
    const one = (name: SendingLimitName): SendingLimitView => {
      const limit = this.cfg[name] ?? null;
      const count = c[COUNT[name].of];
      return { count, limit, remaining: limit === null ? null : Math.max(0, limit - count) };
    };
    return {
      userHash: this.keys.userHash(user),
      windowSeconds: Math.round(this.cfg.window / 1000),
      windowLeftSeconds: Math.ceil(c.ttlMs / 1000),
      messages: one('messagesPerDay'),
      recipients: one('recipientsPerDay'),
      newRecipients: one('newRecipientsPerDay'),
    };
  }

  /** DELETE /api/v1/sending: the counts start again; with `known` the account's recipients
   *  are forgotten too (every one first-time again). */
  async reset(user: string, known: boolean): Promise<void> {
    await this.store.sendingReset(this.keys.sendingKey(user), known ? this.keys.knownRecipientsKey(user) : undefined);
  }

  /** The counts and known flags, or null when the store failed or was late (fail open). */
  private async peek(user: string, prints: string[]): Promise<(SendingCounts & { known: boolean[] }) | null> {
    try {
      const at = { atMs: this.clock.now(), knownTtlMs: this.cfg.knownRecipientsFor };
      return await deadline(this.store.sendingPeek(this.keys.sendingKey(user), this.keys.knownRecipientsKey(user), prints, at), this.timeoutMs);
    } catch (err) {
      this.failed('check', err as Error);
      return null;
    }
  }

  /** Refused when `wouldBe` (the count with this command) exceeds the limit. */
  private over(name: SendingLimitName, wouldBe: number, ttlMs: number): SendingVerdict {
    const limit = this.cfg[name];
    if (limit === undefined || wouldBe <= limit) return { ok: true };
    // No window open yet: the message in progress alone crosses the limit, and it will count
    // for a whole window once accepted.
    const retryAfterMs = Math.max(ttlMs > 0 ? ttlMs : this.cfg.window, MIN_RETRY_MS);
    return { ok: false, limit: name, retryAfterMs, reply: refusalReply(this.cfg.text, name, retryAfterMs) };
  }

  /** One alert per limit this add made reached (its count went from below to at least the
   *  limit: once per window, whichever instance's add crossed it). */
  private reached(user: string, after: SendingCounts, added: Omit<SendingCounts, 'ttlMs'>): void {
    const counts = { messages: after.messages, recipients: after.recipients, newRecipients: after.newRecipients };
    for (const name of SENDING_LIMITS) {
      const limit = this.cfg[name];
      const of = COUNT[name].of;
      if (limit === undefined || added[of] === 0 || after[of] < limit || after[of] - added[of] >= limit) continue;
      this.emit({ kind: 'sending-limit', subject: this.keys.userHash(user), limit: name, counts, until: new Date(this.clock.now() + after.ttlMs).toISOString() });
    }
  }

  private failed(what: 'check' | 'count', err: Error): void {
    this.metrics?.sendingStoreErrors.inc({ op: what });
    this.log.error({ event: 'sending.store-failed', op: what, err: err.message }, what === 'check' ? 'sending limits not checked: the store failed (let through)' : 'could not count a sent message');
  }
}

/** The account sending limits of a config; null when limits.sending is absent (nothing
 *  tracked), or the store keeps no sending counts. */
export function sendingLimits(
  cfg: { limits: { sending?: SendingConfig } },
  store: LimitStore,
  keys: KeyBuilder,
  clock: Clock,
  log: Logger,
  emit: EmitAlert,
  metrics?: SendingMetrics,
): SendingLimits | null {
  const s = cfg.limits.sending;
  if (!s || !store.sendingPeek || !store.sendingAdd || !store.sendingReset) return null;
  return new SendingLimits(s, store as LimitStore & SendingStore, keys, clock, log, emit, metrics);
}
