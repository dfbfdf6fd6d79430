// No-read flood (issue 15): legitimate IMAP logins (connect, greeting, LOGIN, the answer) at a
// steady rate, alone and while N clients from a few addresses pipeline `a CAPABILITY` as fast
// as their sockets take it and never read a reply, for each N; against mailgate's plaintext
// IMAP listener and against Dovecot direct under the same flood. Flooders and probes are child
// processes (bench/noread-clients.mjs), bounded in time and always stopped.
import { spawn } from 'node:child_process';
import type { DovecotUser } from '../test/helpers/dovecot.js';
import { loopbackSources, round, sleep, type LoadResult } from './lib.js';
import { cpuSeconds } from './procstat.js';

export interface NoreadTarget {
  name: string;
  port: number;
  /** The processes whose CPU the flood costs (Dovecot direct: all of its own). */
  pids: () => number[];
}

export interface NoreadOptions {
  /** Flooder counts, one measurement each. */
  flooders: number[];
  /** Source addresses the flooders share (127.77.0.x). */
  addresses: number;
  /** Legitimate logins a second (127.88.0.x, 20 addresses). */
  rate: number;
  /** Probe time per measurement, after the flood had warmupMs to build up. */
  durationMs: number;
  warmupMs: number;
  users: DovecotUser[];
  log: (s: string) => void;
}

const CLIENTS = new URL('./noread-clients.mjs', import.meta.url).pathname;
/** A probe login that takes longer counts as failed, at this time. */
const PROBE_TIMEOUT_MS = 20_000;

/** One client process: its result line, and stop (stdin "stop", then SIGKILL after a grace). */
function clients(spec: object): { result: Promise<LoadResult>; stop(): void } {
  const child = spawn(process.execPath, [CLIENTS, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const result = new Promise<LoadResult>((resolve, reject) => {
    child.once('exit', (code) => {
      process.off('exit', kill);
      if (code === 0) resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as LoadResult);
      else reject(new Error(`noread-clients exited with ${code}`));
    });
  });
  return {
    result,
    stop() {
      if (child.exitCode !== null) return;
      child.stdin!.end('stop\n');
      setTimeout(kill, 5_000).unref();
    },
  };
}

const summary = (p: LoadResult) => ({ attempts: p.attempts as number, ok: p.ok as number, p50ms: p.loginMs.p50 as number, p99ms: p.loginMs.p99 as number, maxMs: p.loginMs.max as number, samples: p.samples as string[] });

export async function noreadPhase(targets: NoreadTarget[], o: NoreadOptions) {
  const rows = [];
  const probe = (port: number) => ({ mode: 'probe', host: '127.0.0.1', port, rate: o.rate, durationMs: o.durationMs, users: o.users, sources: loopbackSources(20, 88), timeoutMs: PROBE_TIMEOUT_MS });
  for (const t of targets) {
    const unloaded = summary(await clients(probe(t.port)).result);
    rows.push({ target: t.name, flooders: 0, addresses: 0, probe: unloaded, p99Ratio: 1, flood: null, cpuPct: null });
    o.log(`  noread ${t.name.padEnd(16)} alone: ${unloaded.ok}/${unloaded.attempts} ok, p99 ${unloaded.p99ms} ms`);
    for (const n of o.flooders) {
      const pids = t.pids();
      const cpu0 = cpuSeconds(pids);
      const t0 = performance.now();
      const addresses = Math.min(n, o.addresses);
      // Its own hard stop too: a flood outlives nothing, whatever happens here.
      const flood = clients({ mode: 'flood', host: '127.0.0.1', port: t.port, count: n, sources: loopbackSources(addresses, 77), payload: 'a CAPABILITY\r\n', durationMs: o.warmupMs + o.durationMs + PROBE_TIMEOUT_MS + 5_000 });
      let p;
      try {
        await sleep(o.warmupMs);
        p = summary(await clients(probe(t.port)).result);
      } finally {
        flood.stop();
      }
      const f = await flood.result;
      const cpuPct = pids.length ? round(((cpuSeconds(pids) - cpu0) / ((performance.now() - t0) / 1000)) * 100, 0) : null;
      rows.push({ target: t.name, flooders: n, addresses, probe: p, p99Ratio: unloaded.p99ms ? round(p.p99ms / unloaded.p99ms) : null, flood: f, cpuPct });
      o.log(`  noread ${t.name.padEnd(16)} ${String(n).padStart(2)} flooders: ${p.ok}/${p.attempts} ok, p99 ${p.p99ms} ms (alone ${unloaded.p99ms} ms); flood ${f.opened} connections, ${f.endedByServer} ended by the server`);
      await sleep(1_000); // the target lets go of the flood's connections before the next count
    }
  }
  return rows;
}
