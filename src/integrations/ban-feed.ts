// The running blocks as the integrations see them (firewall sets, CrowdSec, the ban list,
// alerts): read from the store's own listing on an interval, so they hold whichever process or
// instance made a block, and survive restarts (the first read is a full resync). A block
// reaches a firewall only if it would turn the address away at connect anyway: an ip rule's
// block (an address, or a network for a prefix rule), not a together group's, and, with
// known-good pairs or hints on, of an address nobody logged in from lately (an office NAT's
// colleagues keep getting in). One feed per process that serves the admin endpoint.
import type { Clock } from '../clock.js';
import { parseKey } from '../limits/keys.js';
import type { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { LimitStore } from '../stores/store.js';

export interface Ban {
  /** The counter key: one ban per key. */
  key: string;
  rule: string;
  kind: 'ip' | 'user' | 'ip+user' | 'password';
  /** The address or network (CIDR) of an ip rule's block. */
  cidr?: string;
  /** The account's keyed hash (user rules: an account under protection). */
  userHash?: string;
  sinceMs: number;
  /** When it ends, on this process's clock. */
  untilMs: number;
  /** Whether a firewall may drop the address (see above). */
  firewall: boolean;
}

export interface BanDiff {
  added: Ban[];
  removed: Ban[];
  /** Still blocked, longer than before (a growing block started again). */
  extended: Ban[];
}

export type BanListener = (diff: BanDiff, all: readonly Ban[]) => void | Promise<void>;
type Listener = BanListener;

/** A block this close to its end is taken as ended, so a poll does not add what the next
 *  removes. */
const ENDING_MS = 1_000;
/** A growth under this is the clock's noise between two reads, not a longer block. */
const EXTENDED_MS = 2_000;

export class BanFeed {
  private bans = new Map<string, Ban>();
  private readonly listeners: Listener[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<BanDiff> | null = null;
  private failing = false;

  constructor(
    private readonly store: LimitStore,
    private readonly policy: () => Policy,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  /** The bans as of the last read. */
  current(): Ban[] {
    const now = this.clock.now();
    return [...this.bans.values()].filter((b) => b.untilMs > now);
  }

  subscribe(fn: Listener): void {
    this.listeners.push(fn);
  }

  /** Reads the store now (one read at a time; a caller during a read gets that read's diff). */
  refresh(): Promise<BanDiff> {
    this.running ??= this.read().finally(() => (this.running = null));
    return this.running;
  }

  private async read(): Promise<BanDiff> {
    const none: BanDiff = { added: [], removed: [], extended: [] };
    let entries;
    try {
      entries = await this.store.blocks();
      if (this.failing) this.log.info({ event: 'integrations.recovered', source: 'blocks' }, 'blocks can be read again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ event: 'integrations.error', source: 'blocks', error: (err as Error).message }, 'cannot read the blocks: integrations keep the last ones');
      this.failing = true;
      return none;
    }
    const now = this.clock.now();
    const policy = this.policy();
    const next = new Map<string, Ban>();
    await Promise.all(
      entries
        .filter((e) => e.remainingMs > ENDING_MS)
        .map(async (e) => {
          const k = parseKey(e.key);
          if (!k) return;
          const ban: Ban = { key: e.key, rule: k.rule, kind: k.kind, cidr: k.kind === 'ip' ? k.ip : undefined, userHash: k.userHash, sinceMs: e.sinceMs, untilMs: now + e.remainingMs, firewall: false };
          ban.firewall = k.kind === 'ip' && ban.cidr !== undefined && !ban.cidr.startsWith('grp:') && (await this.unknownAddress(policy, ban.cidr, policy.rules.find((r) => r.name === k.rule)?.prefix !== undefined));
          next.set(e.key, ban);
        }),
    );
    const diff: BanDiff = { added: [], removed: [], extended: [] };
    for (const [key, b] of next) {
      const before = this.bans.get(key);
      if (!before || before.firewall !== b.firewall) diff.added.push(b);
      else if (b.untilMs > before.untilMs + EXTENDED_MS) diff.extended.push(b);
    }
    for (const [key, b] of this.bans) if (!next.has(key) || next.get(key)!.firewall !== b.firewall) diff.removed.push(b);
    this.bans = next;
    const all = [...next.values()];
    for (const fn of this.listeners) {
      try {
        await fn(diff, all);
      } catch (err) {
        this.log.error({ event: 'integrations.error', source: 'listener', error: (err as Error).message }, 'an integration failed on the blocks');
      }
    }
    return diff;
  }

  /** A prefix rule's network lifts on any success from it, so its block stands; a client
   *  (an IPv4 address, an IPv6 client's /64 key) stands unless someone logged in from it
   *  lately (exemptions on). */
  private async unknownAddress(policy: Policy, cidr: string, network: boolean): Promise<boolean> {
    if (network || !policy.exemptions) return true;
    try {
      return (await this.store.peek(policy.keys.successesKey(cidr))).count === 0;
    } catch {
      return false; // unsure: leave the address to the login, which decides per user
    }
  }

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** The one feed of a process (the one serving the admin endpoint), started with its listeners
 *  so the first read (a full resync) reaches all of them. */
export function startBanFeed(deps: { store: LimitStore; policy: () => Policy; clock: Clock; log: Logger }, intervalMs: number, listeners: BanListener[]): BanFeed {
  const feed = new BanFeed(deps.store, deps.policy, deps.clock, deps.log, intervalMs);
  for (const fn of listeners) feed.subscribe(fn);
  feed.start();
  return feed;
}
