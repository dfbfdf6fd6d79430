// The spliced sessions of this process, as the admin API lists and kicks them: who logged in
// (the canonical user name), from where, on which listener, since when, the bytes so far. A
// kick destroys both sockets of each matching session (no `* BYE`: the splice forwards bytes it
// never parses, so a line of ours could land inside a backend's literal). No socket of its own.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ClientAddress } from '../backend/types.js';
import type { Splice } from '../backend/splice.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';

/** Most sessions one list answer carries (each process, and the whole answer): the total is
 *  always counted, the list stays a bounded reply. */
export const MAX_LISTED_SESSIONS = 1_000;

export interface SessionView {
  session: string;
  /** The canonical name the session logged in as (the operator's own, token-protected API). */
  user: string;
  ip: string;
  protocol: string;
  listener: string;
  /** The client's TLS version (TLSv1.3 …), null on plaintext. */
  tls: string | null;
  since: string;
  bytesIn: number;
  bytesOut: number;
  /** Which process holds it (worker mode: the worker's slot, filled in by cluster/). */
  pid: number;
  worker?: number;
}

export interface SessionList {
  total: number;
  sessions: SessionView[];
}

/** Whose sessions a kick ends: one user (canonical name) or one client address (canonical). */
export type KickTarget = { user: string; ip?: undefined } | { ip: string; user?: undefined };

/** One spliced session: what the session knew at login, and its splice. */
export class SplicedSession {
  private readonly since = Date.now();
  private readonly info: Omit<SessionView, 'since' | 'bytesIn' | 'bytesOut' | 'pid'>;

  constructor(
    private readonly splice: Splice,
    socket: Socket,
    client: ClientAddress,
    listener: ListenerConfig,
    user: string,
  ) {
    const tls = (socket as TLSSocket).encrypted ? ((socket as TLSSocket).getProtocol() ?? 'TLS') : null;
    this.info = { session: client.sessionId, user, ip: client.ip, protocol: listener.protocol, listener: listener.name, tls };
  }

  view(): SessionView {
    const { bytesIn, bytesOut } = this.splice.stats;
    return { ...this.info, since: new Date(this.since).toISOString(), bytesIn, bytesOut, pid: process.pid };
  }

  matches(t: KickTarget): boolean {
    return t.user !== undefined ? this.info.user === t.user : this.info.ip === t.ip;
  }

  destroy(why: 'shutdown' | 'kicked' = 'shutdown'): void {
    this.splice.destroy(why);
  }

  /** Runs until the splice ends, listed in `live` meanwhile; counts the bytes, logs the end. */
  async run(live: LiveSessions | undefined, metrics: Metrics, log: Logger): Promise<void> {
    live?.add(this);
    const stats = await this.splice.done;
    live?.delete(this);
    metrics.splicedBytes.inc({ listener: this.info.listener, direction: 'in' }, stats.bytesIn);
    metrics.splicedBytes.inc({ listener: this.info.listener, direction: 'out' }, stats.bytesOut);
    log.info({ event: 'splice.end', ...stats }, 'session ended');
  }
}

/** Every spliced session of the process (across reloads: a listener a reload closed keeps its
 *  sessions, and they stay listed and kickable). */
export class LiveSessions {
  private readonly all = new Set<SplicedSession>();

  constructor(
    private readonly log: Logger,
    private readonly metrics: Pick<Metrics, 'sessionsKicked'>,
  ) {}

  add(s: SplicedSession): void {
    this.all.add(s);
  }

  delete(s: SplicedSession): void {
    this.all.delete(s);
  }

  /** The oldest first, at most `limit`, with the total. */
  list(limit = MAX_LISTED_SESSIONS): SessionList {
    const sessions: SessionView[] = [];
    for (const s of this.all) {
      if (sessions.length >= limit) break;
      sessions.push(s.view());
    }
    return { total: this.all.size, sessions };
  }

  /** Ends every session of the target here; how many. */
  kick(target: KickTarget): number {
    let ended = 0;
    for (const s of [...this.all]) {
      if (!s.matches(target)) continue;
      const v = s.view();
      this.log.info({ event: 'session.kicked', session: v.session, user: v.user, ip: v.ip, listener: v.listener, protocol: v.protocol, bytesIn: v.bytesIn, bytesOut: v.bytesOut }, 'session kicked');
      s.destroy('kicked');
      this.all.delete(s);
      ended++;
    }
    if (ended) this.metrics.sessionsKicked.inc(ended);
    return ended;
  }
}
