// Webhooks on what operators act on (alerts.webhooks): an account under protection, attack
// mode on/off, an address blocked by a rule, the store or a backend down/up, an account at a
// sending limit. Per webhook and event kind, the first event goes out at once and the rest of a
// cooldown as one message ("12 more"); failed posts are retried with backoff from a bounded
// queue. Off the login path entirely: emit() only queues. Time is the injected clock; a timer calls tick().
import type { Clock } from '../clock.js';
import type { AlertEvent as AlertKind, AlertsConfig } from '../config/integrations-schema.js';
import type { Logger } from '../logging/logger.js';

export interface AlertEvent {
  kind: AlertKind;
  /** on/off (attack mode), down/up (store, backend), or absent. */
  state?: 'on' | 'off' | 'down' | 'up';
  /** The address or network (block), the account's keyed hash (protection, new-network,
   *  retired-password, sending-limit), the backend. */
  subject?: string;
  rule?: string;
  /** The client's network (new-network, retired-password) and protocol. */
  network?: string;
  protocol?: string;
  /** new-network: the client's AS number and country where GeoIP knows them, and what is new
   *  (the network; the ASN, the country when none of the account's kept successes had it). */
  asn?: number;
  country?: string;
  new?: ('network' | 'asn' | 'country')[];
  /** sending-limit: which limit (limits.sending's name) and the account's counts then. */
  limit?: string;
  counts?: { messages: number; recipients: number; newRecipients: number };
  /** Until when a block, a protection or a sending window lasts (ISO). */
  until?: string;
  /** When it happened (ISO), set by emit. */
  at?: string;
}

type Webhook = AlertsConfig['webhooks'][number];

interface Message {
  kind: AlertKind;
  events: AlertEvent[];
  count: number;
  attempt: number;
  dueAt: number;
}

/** Events kept in one message (the count says how many there were). */
const SAMPLE = 10;
/** Messages waiting per webhook; past it the oldest is dropped (logged). */
const MAX_QUEUE = 100;
/** A message is posted at most this often, waiting BACKOFF_MS between tries: a receiver down
 *  for about 6 minutes (a restart, a deploy) still gets it; longer, it is given up and logged. */
const MAX_ATTEMPTS = 6;
const BACKOFF_MS = [1_000, 5_000, 15_000, 60_000, 300_000];
/** A receiver that has not answered in this time counts as failed (retried): a hung one must
 *  not hold the other messages of its webhook. */
const POST_TIMEOUT_MS = 5_000;
/** How often due messages and cooldowns are looked at: the resolution of `cooldown`. */
const TICK_MS = 1_000;

const noun: Record<AlertKind, (n: number) => string> = {
  protection: (n) => (n === 1 ? 'an account is under protection' : `${n} accounts are under protection`),
  'attack-mode': (n) => (n === 1 ? 'attack mode changed' : `attack mode changed ${n} times`),
  block: (n) => (n === 1 ? 'an address was blocked by a rule' : `${n} addresses were blocked by rules`),
  store: (n) => (n === 1 ? 'the limit store changed state' : `the limit store changed state ${n} times`),
  backend: (n) => (n === 1 ? 'a backend changed state' : `backends changed state ${n} times`),
  'new-network': (n) => (n === 1 ? 'an account logged in from a new network' : `${n} logins from new networks`),
  'retired-password': (n) => (n === 1 ? 'a retired password was tried' : `retired passwords were tried ${n} times`),
  'sending-limit': (n) => (n === 1 ? 'an account reached a sending limit' : `accounts reached sending limits ${n} times`),
};

function describe(e: AlertEvent): string {
  const also = e.new?.filter((p) => p !== 'network').map((p) => (p === 'asn' ? `new ASN AS${e.asn}` : `new country ${e.country}`));
  const parts = [e.subject, e.state, e.network && `from ${e.network}`, also?.length && `(${also.join(', ')})`, e.rule && `rule ${e.rule}`, e.limit && `limit ${e.limit}`, e.until && `until ${e.until}`].filter(Boolean);
  return parts.join(' ');
}

/** The body posted: fields for machines, `text` for chat webhooks (Slack, Mattermost…). */
export function alertBody(m: Pick<Message, 'kind' | 'events' | 'count'>) {
  const first = m.events[0]!;
  const more = m.count - 1;
  const text = `mailgate: ${noun[m.kind](m.count)}: ${describe(first)}${more > 0 ? ` (and ${more} more)` : ''}`;
  return { source: 'mailgate', kind: m.kind, count: m.count, more, events: m.events, text };
}

class Hook {
  private readonly queue: Message[] = [];
  /** Per kind: events held until the cooldown since the last message of that kind ends. */
  private readonly held = new Map<AlertKind, { events: AlertEvent[]; count: number }>();
  private readonly lastSent = new Map<AlertKind, number>();
  private sending = false;

  constructor(
    readonly cfg: Webhook,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  add(e: AlertEvent): void {
    const now = this.clock.now();
    const last = this.lastSent.get(e.kind);
    if (last === undefined || now - last >= this.cfg.cooldown) {
      this.lastSent.set(e.kind, now);
      this.enqueue({ kind: e.kind, events: [e], count: 1, attempt: 0, dueAt: now });
      return;
    }
    const h = this.held.get(e.kind) ?? { events: [], count: 0 };
    if (h.events.length < SAMPLE) h.events.push(e);
    h.count++;
    this.held.set(e.kind, h);
  }

  private enqueue(m: Message): void {
    if (this.queue.length >= MAX_QUEUE) {
      const dropped = this.queue.shift()!;
      this.log.warn({ event: 'integrations.error', source: 'alerts', kind: dropped.kind, error: 'queue full: oldest message dropped' }, 'alert webhook is not keeping up');
    }
    this.queue.push(m);
  }

  /** Releases held events whose cooldown ended, and sends what is due (one post at a time). */
  async tick(): Promise<void> {
    const now = this.clock.now();
    for (const [kind, h] of this.held) {
      if (now - (this.lastSent.get(kind) ?? 0) < this.cfg.cooldown) continue;
      this.held.delete(kind);
      this.lastSent.set(kind, now);
      this.enqueue({ kind, events: h.events, count: h.count, attempt: 0, dueAt: now });
    }
    if (this.sending) return;
    this.sending = true;
    try {
      for (let m = this.due(); m; m = this.due()) await this.post(m);
    } finally {
      this.sending = false;
    }
  }

  /** The oldest message due now (a failed one waits for its backoff behind the others). */
  private due(): Message | undefined {
    const now = this.clock.now();
    return this.queue.find((m) => m.dueAt <= now);
  }

  private async post(m: Message): Promise<void> {
    let error: string | null = null;
    try {
      const res = await fetch(this.cfg.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'mailgate-alerts', ...this.cfg.headers },
        body: JSON.stringify(alertBody(m)),
        signal: AbortSignal.timeout(POST_TIMEOUT_MS),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) error = `HTTP ${res.status}`;
    } catch (err) {
      error = (err as Error).message;
    }
    this.queue.splice(this.queue.indexOf(m), 1);
    if (error === null) return;
    m.attempt++;
    if (m.attempt >= MAX_ATTEMPTS) {
      this.log.warn({ event: 'integrations.error', source: 'alerts', kind: m.kind, error }, 'alert webhook failed: message given up');
      return;
    }
    if (m.attempt === 1) this.log.warn({ event: 'integrations.error', source: 'alerts', kind: m.kind, error }, 'alert webhook failed: retrying');
    m.dueAt = this.clock.now() + BACKOFF_MS[Math.min(m.attempt - 1, BACKOFF_MS.length - 1)]!;
    this.queue.push(m);
  }
}

export class Alerts {
  private readonly hooks: Hook[];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    cfg: AlertsConfig,
    private readonly clock: Clock,
    log: Logger,
  ) {
    this.hooks = cfg.webhooks.map((w) => new Hook(w, clock, log));
  }

  /** Queues an event for every webhook that wants its kind; never waits. */
  emit(e: AlertEvent): void {
    const event = { ...e, at: new Date(this.clock.now()).toISOString() };
    for (const h of this.hooks) if (h.cfg.events.includes(e.kind)) h.add(event);
    void this.tick();
  }

  /** Sends what is due (the timer calls it every second; tests with their clock). */
  async tick(): Promise<void> {
    await Promise.all(this.hooks.map((h) => h.tick()));
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
