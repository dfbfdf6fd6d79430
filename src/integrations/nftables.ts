// Mirrors the blocks a firewall may drop (Ban.firewall) into two nftables sets, one per address
// family (flags interval, timeout), each element timing out when its block ends; the operator's
// own rule drops them. Drives `nft -f -` with one batch per change; runs off the login path
// (the ban feed's listener), so a slow or broken nft delays no login. Writes only its sets.
import { spawn } from 'node:child_process';
import ipaddr from 'ipaddr.js';
import type { Clock } from '../clock.js';
import type { FirewallConfig } from '../config/integrations-schema.js';
import type { Logger } from '../logging/logger.js';
import type { Ban, BanFeed } from './ban-feed.js';

type NftConfig = FirewallConfig['nftables'];

/** One nft run may take this long (a sudo asking for a password, a stuck netlink socket): then
 *  it is killed and counts as a failure. */
const NFT_TIMEOUT_MS = 10_000;
/** An element's timeout is capped here: nft 1.0.6 refuses timeouts of 10^8 s and more ("value
 *  too large"); mailgate's blocks end within 366 days (MAX_TTL_MS) anyway. */
const MAX_TIMEOUT_S = 99_999_999;
/** An end that moved less than this is the clock's noise between two reads of the feed, not a
 *  block worth rewriting. */
const CHANGED_MS = 2_000;
/** The sets are rewritten whole at least this often: a ruleset reloaded by hand (`nft -f
 *  /etc/nftables.conf` begins with `flush ruleset`) empties them without mailgate knowing. */
const REWRITE_MS = 300_000;
/** nft's stderr kept for the log. */
const MAX_STDERR = 2_000;

/** One element of a set: an address or a network, as nft writes it. */
interface Element {
  v6: boolean;
  /** `192.0.2.7`, `192.0.2.0/24`, `2001:db8::/64`: host bits cleared, whole addresses bare. */
  text: string;
  addr: ipaddr.IPv4 | ipaddr.IPv6;
  bits: number;
  untilMs: number;
}

/** The element for a ban's address or network; null if it is neither. */
export function elementOf(cidr: string, untilMs: number): Element | null {
  try {
    const [addr, bits] = cidr.includes('/') ? ipaddr.parseCIDR(cidr) : [ipaddr.parse(cidr), -1];
    // An IPv4-mapped address belongs in the IPv4 set (nft would put ::ffff:0:0/96 in set6).
    const a = addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && (bits < 0 || bits >= 96) ? (addr as ipaddr.IPv6).toIPv4Address() : addr;
    const v6 = a.kind() === 'ipv6';
    const width = v6 ? 128 : 32;
    const len = bits < 0 ? width : a === addr ? bits : bits - 96;
    const net = len === width ? a : v6 ? ipaddr.IPv6.networkAddressFromCIDR(`${a.toString()}/${len}`) : ipaddr.IPv4.networkAddressFromCIDR(`${a.toString()}/${len}`);
    return { v6, addr: net, bits: len, text: len === width ? net.toString() : `${net.toString()}/${len}`, untilMs };
  } catch {
    return null;
  }
}

const covers = (wide: Element, e: Element) => wide.v6 === e.v6 && wide.bits <= e.bits && e.addr.match(wide.addr, wide.bits);

/** The elements the sets should hold: one per address or network (the latest end of the blocks
 *  on it), none inside a wider one. An interval set refuses an element that overlaps another
 *  ("interval overlaps with an existing one"), so an address inside a blocked network is left
 *  to the network's element: it is added when the network's block ends, at the next read.
 *  (auto-merge would join them into one element with one timeout and lose each one's end.) */
export function wanted(bans: readonly Ban[], now: number): Map<string, Element> {
  const byText = new Map<string, Element>();
  for (const b of bans) {
    if (!b.firewall || b.cidr === undefined || b.untilMs <= now) continue;
    const e = elementOf(b.cidr, b.untilMs);
    if (!e) continue;
    const had = byText.get(e.text);
    if (!had || had.untilMs < e.untilMs) byText.set(e.text, e);
  }
  const networks = [...byText.values()].filter((e) => e.bits < (e.v6 ? 128 : 32)).sort((a, b) => a.bits - b.bits);
  const out = new Map<string, Element>();
  for (const e of byText.values()) if (!networks.some((n) => n !== e && n.bits < e.bits && covers(n, e))) out.set(e.text, e);
  return out;
}

export class NftablesMirror {
  /** What the sets hold, as far as this process wrote them. */
  private written = new Map<string, Element>();
  /** The sets must be rewritten whole: at start, and after nft failed. */
  private dirty = true;
  private rewrittenAt = 0;
  private failing = false;
  private stopped = false;
  /** The latest blocks not yet written (reads that come while nft runs are coalesced: each
   *  carries the whole list). */
  private latest: readonly Ban[] | null = null;
  private work: Promise<void> = Promise.resolve();
  private draining = false;
  private readonly argv: string[];

  constructor(
    private readonly cfg: NftConfig,
    private readonly deps: { log: Logger; clock: Clock },
  ) {
    this.argv = cfg.nft.trim().split(/\s+/);
  }

  /** Not awaited by the feed: a hung nft holds up neither it nor the other integrations. */
  attach(feed: Pick<BanFeed, 'subscribe'>): void {
    feed.subscribe((diff, all) => {
      if (this.stopped) return;
      // A change is written; while the sets are dirty (nft failed), every read retries.
      if (diff.added.length + diff.removed.length + diff.extended.length === 0 && !this.dirty && !this.due()) return;
      this.latest = all;
      if (!this.draining) this.work = this.drain();
    });
  }

  /** Creates the table and the sets if missing, so the operator's rule that names them loads.
   *  Their elements are left as they are until the feed's first read rewrites them whole. A
   *  failure is logged (and retried by that read), never thrown: mail goes on. */
  start(): Promise<void> {
    this.work = this.work.then(async () => {
      try {
        await this.nft(this.declare());
        this.ok();
      } catch (err) {
        this.failed(err as Error);
      }
    });
    return this.work;
  }

  /** Waits for a batch under way. The elements stay and time out on their own; the next start
   *  rewrites them whole. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }

  /** Resolves once the batches under way are written (or failed). */
  async idle(): Promise<void> {
    while (this.draining) await this.work;
    await this.work;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    await this.work;
    while (this.latest && !this.stopped) {
      const all = this.latest;
      this.latest = null;
      await this.sync(all);
    }
    this.draining = false;
  }

  private async sync(all: readonly Ban[]): Promise<void> {
    const want = wanted(all, this.deps.clock.now());
    try {
      const batch = this.dirty || this.due() ? null : this.changes(want);
      if (batch === '') return;
      if (batch !== null) {
        try {
          await this.nft(batch);
          this.done(want);
          return;
        } catch (err) {
          // Someone else changed the sets (an element removed by hand, a flush): rewrite them.
          this.deps.log.info({ event: 'integrations.resync', source: 'nftables', error: (err as Error).message }, 'nftables: a change failed, rewriting the sets');
        }
      }
      await this.nft(this.declare() + this.flushAndFill(want));
      this.rewrittenAt = this.deps.clock.now();
      this.done(want);
    } catch (err) {
      this.dirty = true;
      this.failed(err as Error);
    }
  }

  private due(): boolean {
    return this.deps.clock.now() - this.rewrittenAt >= REWRITE_MS;
  }

  private done(want: Map<string, Element>): void {
    this.written = want;
    this.dirty = false;
    this.ok();
  }

  private ok(): void {
    if (this.failing) this.deps.log.info({ event: 'integrations.recovered', source: 'nftables' }, 'nftables: the sets are written again');
    this.failing = false;
  }

  private failed(err: Error): void {
    if (!this.failing) this.deps.log.error({ event: 'integrations.error', source: 'nftables', error: err.message }, 'nftables: cannot write the sets (retried at every read of the blocks)');
    this.failing = true;
  }

  private target(v6: boolean): string {
    return `${this.cfg.family} ${this.cfg.table} ${v6 ? this.cfg.set6 : this.cfg.set4}`;
  }

  private declare(): string {
    const { family, table, set4, set6 } = this.cfg;
    return [
      `add table ${family} ${table}`,
      `add set ${family} ${table} ${set4} { type ipv4_addr; flags interval, timeout; }`,
      `add set ${family} ${table} ${set6} { type ipv6_addr; flags interval, timeout; }`,
      '',
    ].join('\n');
  }

  /** One transaction: nobody blocked slips through between the flush and the adds. */
  private flushAndFill(want: Map<string, Element>): string {
    return `flush set ${this.target(false)}\nflush set ${this.target(true)}\n` + this.lines('add', [...want.values()], true);
  }

  /** The batch that turns `written` into `want`: '' for none, null when only a rewrite can
   *  (an element added where an overlapping one goes: nft 1.0.6 checks a new interval against
   *  the set as it is, not as the batch's deletes leave it). */
  private changes(want: Map<string, Element>): string | null {
    const gone = [...this.written.values()].filter((e) => !want.has(e.text));
    const moved = [...want.values()].filter((e) => this.written.has(e.text) && Math.abs(this.written.get(e.text)!.untilMs - e.untilMs) > CHANGED_MS);
    const fresh = [...want.values()].filter((e) => !this.written.has(e.text));
    if (fresh.some((e) => gone.some((g) => covers(g, e) || covers(e, g)))) return null;
    // Deleting an element that is not there fails the whole batch, and an element may have
    // timed out already: adding it first makes the delete safe. A changed end is delete + add:
    // re-adding an element updates its timeout only on recent kernels (older ones keep it).
    const out = [...gone, ...moved];
    return this.lines('add', out, false) + this.lines('delete', out, false) + this.lines('add', [...moved, ...fresh], true);
  }

  private lines(verb: 'add' | 'delete', els: Element[], realTimeout: boolean): string {
    const now = this.deps.clock.now();
    const item = (e: Element) => {
      if (verb === 'delete') return e.text;
      const s = realTimeout ? Math.min(MAX_TIMEOUT_S, Math.max(1, Math.ceil((e.untilMs - now) / 1000))) : 1;
      return `${e.text} timeout ${s}s`;
    };
    let out = '';
    for (const v6 of [false, true]) {
      const mine = els.filter((e) => e.v6 === v6);
      if (mine.length) out += `${verb} element ${this.target(v6)} { ${mine.map(item).join(', ')} }\n`;
    }
    return out;
  }

  /** Runs the configured nft command with `-f -` and the batch on stdin. */
  private nft(batch: string): Promise<void> {
    const [cmd, ...args] = this.argv as [string, ...string[]];
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, [...args, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${this.cfg.nft}: no answer in ${NFT_TIMEOUT_MS / 1000}s`));
      }, NFT_TIMEOUT_MS);
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(0, MAX_STDERR)));
      child.stdin.on('error', () => undefined); // nft gone before reading: its exit says why
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${this.cfg.nft}: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(stderr.trim() || `${this.cfg.nft} exited with ${code ?? signal}`));
      });
      child.stdin.end(batch);
    });
  }
}
