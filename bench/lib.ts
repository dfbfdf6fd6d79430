// Shared plumbing for the benchmark phases: running the load generator as a child process,
// holding idle connections, reading Redis' command counters, finding Dovecot's processes.
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { childPids } from './procstat.js';

const run = promisify(execFile);
const LOADGEN = new URL('./loadgen.mjs', import.meta.url).pathname;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Source addresses 127.a.b.c for `n` clients: spreads ephemeral ports and per-IP counters. */
export function loopbackSources(n: number, second = 0): string[] {
  return Array.from({ length: n }, (_, i) => `127.${second}.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type LoadResult = Record<string, any>;

/** One load generator run; resolves with its JSON result line. */
export async function loadgen(spec: object, timeoutMs = 300_000): Promise<LoadResult> {
  const { stdout } = await run(process.execPath, [LOADGEN, JSON.stringify(spec)], { maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs });
  const last = stdout.trim().split('\n').at(-1)!;
  return JSON.parse(last) as LoadResult;
}

/** A load generator holding connections open until close() is called. */
export async function holdIdle(spec: object): Promise<{ ready: LoadResult; close(): Promise<LoadResult> }> {
  const child = spawn(process.execPath, [LOADGEN, JSON.stringify({ ...spec, mode: 'idle' })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error('load generator ended early');
    return JSON.parse(r.value) as LoadResult;
  };
  const ready = await next();
  return {
    ready,
    async close() {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.write('close\n');
      const res = await next();
      await exited;
      return res;
    },
  };
}

/** Counts the commands clients send to Redis (MONITOR lines not run by a script): the round
 *  trips, unlike INFO commandstats, which also counts what Lua scripts call inside Redis. */
export async function monitorRedis(port: number): Promise<{ stop(): Promise<{ total: number; byCommand: Record<string, number> }> }> {
  const child = spawn('/usr/bin/redis-cli', ['-p', String(port), 'MONITOR'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const byCommand: Record<string, number> = {};
  let total = 0;
  const lines = createInterface({ input: child.stdout! });
  const attached = new Promise<void>((resolve) => {
    lines.on('line', (l) => {
      if (l === 'OK') return resolve();
      // 1700000000.123456 [0 127.0.0.1:43210] "evalsha" ...; script calls show [0 lua].
      const m = /^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(l);
      if (!m || m[1] === 'lua') return;
      const cmd = m[2]!.toLowerCase();
      byCommand[cmd] = (byCommand[cmd] ?? 0) + 1;
      total++;
    });
  });
  await attached;
  return {
    async stop() {
      await sleep(200); // let the last lines arrive
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      return { total, byCommand };
    },
  };
}

/** Total calls per command from INFO commandstats (INFO itself excluded). */
export async function redisCommandCalls(port: number): Promise<Record<string, number>> {
  const { stdout } = await run('/usr/bin/redis-cli', ['-p', String(port), 'INFO', 'commandstats']);
  const out: Record<string, number> = {};
  for (const m of stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== 'info') out[m[1]!] = Number(m[2]);
  return out;
}

export function diffCalls(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}

/** The Dovecot master started with this config dir, and all its children. */
export function dovecotPids(dir: string): number[] {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('dovecot') && cmd.includes(`${dir}/dovecot.conf`)) return [Number(name), ...childPids(Number(name))];
    } catch {
      /* gone */
    }
  }
  return [];
}

/** Hard limit on open files for processes started from here (`ulimit -Hn`). */
export async function fdLimit(): Promise<number> {
  const { stdout } = await run('bash', ['-c', 'ulimit -n']);
  return Number(stdout.trim()) || 1024;
}

export function pctOf(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (x: number | null | undefined, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? null : +x.toFixed(d));
