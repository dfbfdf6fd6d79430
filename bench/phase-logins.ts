// IMAP LOGIN+LOGOUT per second and latency, 8 and 64 concurrent clients, plain and STARTTLS,
// for every target; with each proxy's CPU per login (/proc), Dovecot's as context, and Redis
// commands per login for the Redis store. Rounds interleave the targets so a burst of
// outside load hits all of them alike.
import type { DovecotUser } from '../test/helpers/dovecot.js';
import { diffCalls, loadgen, loopbackSources, pctOf, redisCommandCalls, round, type LoadResult } from './lib.js';
import { cpuSeconds, cpuSplit } from './procstat.js';

export interface Target {
  name: string;
  port: number;
  /** The proxy's processes (none for direct). */
  pids: () => number[];
  redisPort?: number;
  /** Measured without TLS only (the Node floor has no STARTTLS). */
  plainOnly?: boolean;
}

export interface LoginOptions {
  rounds: number;
  warmupMs: number;
  /** Before the first round, each target serves logins this long, unmeasured (plaintext and, where
   *  it has it, STARTTLS): every process meets the rounds with its code compiled, as a server
   *  that has run for a while is, rather than paying V8's tier-up in whichever cell comes first. */
  warmPassMs: number;
  durationMs: number;
  concurrencies: number[];
  users: DovecotUser[];
  backendPids: () => number[];
  log: (s: string) => void;
}

interface Acc {
  ms: number[];
  ok: number;
  bad: number;
  seconds: number;
  sessions: number;
  cpu: number;
  cpuSys: number;
  backendCpu: number;
  loadgenCpu: number[];
  redis: Record<string, number>;
  samples: string[];
}

export interface LoginRow {
  tls: 'none' | 'starttls';
  concurrency: number;
  target: string;
  logins: number;
  failed: number;
  perSec: number | null;
  p50ms: number | null;
  p99ms: number | null;
  cpuMsPerLogin: number | null;
  /** The kernel's share of cpuMsPerLogin (system time: syscalls, the TCP stack). */
  cpuSysMsPerLogin: number | null;
  backendCpuMsPerLogin: number | null;
  redisCommandsPerLogin: number | null;
  redisCommands?: Record<string, number>;
  loadgenCpuPct: number | null;
  samples?: string[];
}

async function once(t: Target, tls: 'none' | 'starttls', concurrency: number, o: LoginOptions, acc: Acc): Promise<void> {
  const pids = t.pids();
  const backend = o.backendPids();
  const cpu0 = cpuSplit(pids);
  const bcpu0 = cpuSeconds(backend);
  const r0 = t.redisPort ? await redisCommandCalls(t.redisPort) : null;
  const r: LoadResult = await loadgen({
    mode: 'logins', host: '127.0.0.1', port: t.port, tls, concurrency, warmupMs: o.warmupMs, durationMs: o.durationMs,
    users: o.users, sources: loopbackSources(concurrency), raw: true,
  });
  const cpu1 = cpuSplit(pids);
  acc.cpu += cpu1.user + cpu1.sys - cpu0.user - cpu0.sys;
  acc.cpuSys += cpu1.sys - cpu0.sys;
  acc.backendCpu += cpuSeconds(backend) - bcpu0;
  if (r0) for (const [k, v] of Object.entries(diffCalls(r0, await redisCommandCalls(t.redisPort!)))) acc.redis[k] = (acc.redis[k] ?? 0) + v;
  acc.ms.push(...(r.raw.sessionMs as number[]));
  acc.ok += r.ok;
  acc.bad += r.total - r.ok;
  acc.seconds += r.seconds;
  acc.sessions += r.sessionsAll;
  acc.loadgenCpu.push(r.loadgenCpuPct);
  acc.samples.push(...(r.samples as string[]));
}

export async function loginPhase(targets: Target[], o: LoginOptions): Promise<LoginRow[]> {
  const accs = new Map<string, Acc>();
  const key = (tls: string, c: number, t: string) => `${tls}/${c}/${t}`;
  for (const t of targets) {
    for (const tls of t.plainOnly ? (['none'] as const) : (['none', 'starttls'] as const)) {
      const concurrency = Math.max(...o.concurrencies);
      await loadgen({ mode: 'logins', host: '127.0.0.1', port: t.port, tls, concurrency, durationMs: o.warmPassMs, users: o.users, sources: loopbackSources(concurrency) });
    }
    o.log(`  logins warm pass ${t.name}`);
  }
  for (let round = 0; round < o.rounds; round++) {
    for (const tls of ['none', 'starttls'] as const) {
      for (const c of o.concurrencies) {
        // Rotate the order every round: no target always runs first (cold) or last.
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const t of order) {
          if (tls !== 'none' && t.plainOnly) continue;
          const k = key(tls, c, t.name);
          if (!accs.has(k)) accs.set(k, { ms: [], ok: 0, bad: 0, seconds: 0, sessions: 0, cpu: 0, cpuSys: 0, backendCpu: 0, loadgenCpu: [], redis: {}, samples: [] });
          await once(t, tls, c, o, accs.get(k)!);
          const a = accs.get(k)!;
          o.log(`  logins ${tls === 'none' ? 'plain   ' : 'starttls'} c=${String(c).padEnd(2)} ${t.name.padEnd(16)} round ${round + 1}: ${Math.round(a.ok / a.seconds)}/s so far`);
        }
      }
    }
  }
  const rows: LoginRow[] = [];
  for (const tls of ['none', 'starttls'] as const) {
    for (const c of o.concurrencies) {
      for (const t of targets) {
        const a = accs.get(key(tls, c, t.name));
        if (!a) continue;
        const ms = Float64Array.from(a.ms).sort();
        const sorted = Array.from(ms);
        const redisTotal = Object.values(a.redis).reduce((x, y) => x + y, 0);
        rows.push({
          tls,
          concurrency: c,
          target: t.name,
          logins: a.ok,
          failed: a.bad,
          perSec: round(a.ok / a.seconds, 1),
          p50ms: round(pctOf(sorted, 50)),
          p99ms: round(pctOf(sorted, 99)),
          cpuMsPerLogin: t.pids().length ? round((a.cpu * 1000) / a.sessions, 3) : null,
          cpuSysMsPerLogin: t.pids().length ? round((a.cpuSys * 1000) / a.sessions, 3) : null,
          backendCpuMsPerLogin: round((a.backendCpu * 1000) / a.sessions, 3),
          redisCommandsPerLogin: t.redisPort ? round(redisTotal / a.sessions, 2) : null,
          ...(t.redisPort ? { redisCommands: a.redis } : {}),
          loadgenCpuPct: a.loadgenCpu.length ? Math.max(...a.loadgenCpu) : null,
          ...(a.samples.length ? { samples: a.samples.slice(0, 3) } : {}),
        });
      }
    }
  }
  return rows;
}
