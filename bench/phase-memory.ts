// Memory per idle connection: a fresh proxy process per measurement, warmed with a few
// connections of the same kind, then N held open (pre-auth plaintext, pre-auth after
// STARTTLS, logged in and spliced after STARTTLS); the RSS delta (VmRSS, summed over the
// proxy's processes) divided by the connections actually held.
import type { DovecotUser } from '../test/helpers/dovecot.js';
import { holdIdle, loopbackSources, round, sleep } from './lib.js';
import { rssKiB } from './procstat.js';
import type { Proc } from './services.js';

export type IdleKind = 'preauth-plain' | 'preauth-tls' | 'spliced-tls';

export interface MemoryRow {
  proxy: string;
  kind: IdleKind;
  requested: number;
  held: number;
  failed: number;
  baseKiB: number;
  loadedKiB: number;
  perConnKiB: number | null;
  openMs: number;
  note?: string;
}

const KINDS: Record<IdleKind, { tls: 'none' | 'starttls'; login: boolean }> = {
  'preauth-plain': { tls: 'none', login: false },
  'preauth-tls': { tls: 'starttls', login: false },
  'spliced-tls': { tls: 'starttls', login: true },
};

const WARM_CONNECTIONS = 200;
const SETTLE_MS = 1500;

export interface MemoryOptions {
  counts: number[];
  users: DovecotUser[];
  /** Open files allowed per process: a single-process proxy needs two per spliced session. */
  fdLimit: number;
  log: (s: string) => void;
}

export async function memoryPhase(proxies: { name: string; start: () => Promise<Proc>; singleProcess: boolean }[], o: MemoryOptions): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  // Headroom for listeners, the log file, epoll and friends.
  const splicedMax = Math.floor((o.fdLimit - 200) / 2);
  const sources = loopbackSources(1000);
  for (const kind of Object.keys(KINDS) as IdleKind[]) {
    for (const requested of o.counts) {
      // The same N for every proxy, so the figures compare like with like.
      const n = kind === 'spliced-tls' && proxies.some((p) => p.singleProcess) ? Math.min(requested, splicedMax) : requested;
      for (const p of proxies) {
        const proc = await p.start();
        try {
          const spec = { host: '127.0.0.1', port: proc.ports.imap, proto: 'imap', users: o.users, sources, openConcurrency: 64, ...KINDS[kind] };
          const warm = await holdIdle({ ...spec, count: WARM_CONNECTIONS });
          await warm.close();
          await sleep(500);
          const baseKiB = rssKiB(proc.pids());
          const h = await holdIdle({ ...spec, count: n });
          await sleep(SETTLE_MS);
          const loadedKiB = rssKiB(proc.pids());
          const closed = await h.close();
          const held = Math.min(h.ready.alive as number, (closed.stillAlive as number) ?? Infinity);
          rows.push({
            proxy: p.name,
            kind,
            requested,
            held,
            failed: h.ready.failed as number,
            baseKiB,
            loadedKiB,
            perConnKiB: held > 0 ? round((loadedKiB - baseKiB) / held, 2) : null,
            openMs: h.ready.ms as number,
            ...(n < requested ? { note: `${n} held: a single process needs 2 fds per spliced session and the fd limit is ${o.fdLimit}` } : {}),
            ...(h.ready.errors?.length ? { note: `errors: ${(h.ready.errors as string[]).join('; ')}` } : {}),
          });
          o.log(`  memory ${kind.padEnd(13)} ${String(n).padStart(5)} ${p.name.padEnd(16)} ${rows.at(-1)!.perConnKiB} KiB/conn (held ${held})`);
        } finally {
          await proc.stop();
        }
      }
    }
  }
  return rows;
}
