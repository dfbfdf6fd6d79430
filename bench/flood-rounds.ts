// The 1,000-address flood (phase-flood.ts) on several builds, in rounds of fresh processes
// (counters never carry over), interleaved: the legitimate p99 alone and under the flood, and
// the proxy's CPU, with medians. One flood measures 300 legitimate logins, so its p99 is one
// stall away from another figure; the rounds are what to compare builds on.
// Usage: npm run build && npx vite-node bench/flood-rounds.ts NAME:DIST[,NAME:DIST…] [ROUNDS]
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { floodPhase } from './phase-flood.js';
import { benchUsers, startTunedDovecot, startMailgate } from './services.js';
const builds = process.argv[2]!.split(',').map((x) => x.split(':') as [string, string]);
const rounds = Number(process.argv[3] ?? 4);
const dir = mkdtempSync(join(os.tmpdir(), 'floodab-'));
const users = benchUsers(200);
const dovecot = await startTunedDovecot(users);
const res: Record<string, { u: number[]; l: number[]; cpu: number[] }> = {};
try {
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < builds.length; i++) {
      const [name, dist] = builds[(i + r) % builds.length]!;
      const p = await startMailgate({ name: `${name}-${r}`, dir, dovecot, dist });
      const rows = await floodPhase([{ name, port: p.ports.imap, pids: p.pids }], { legitRate: 50, attackRate: 500, durationMs: 6000, scenarios: [{ name: 'many-ips', sources: 1000 }], users, log: () => {} });
      await p.stop();
      const x = rows[0]! as any;
      (res[name] ??= { u: [], l: [], cpu: [] }).u.push(x.unloaded.p99ms); res[name]!.l.push(x.underFlood.p99ms); res[name]!.cpu.push(x.proxyCpuPct);
      console.log(`round ${r} ${name.padEnd(8)} unloaded p99 ${x.unloaded.p99ms} loaded p99 ${x.underFlood.p99ms} cpu ${x.proxyCpuPct}%`);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  for (const [n, v] of Object.entries(res)) console.log(`${n.padEnd(8)} median unloaded ${med(v.u)} loaded ${med(v.l)} (loaded ${v.l.join(', ')}) cpu ${med(v.cpu)}%`);
} finally {
  await dovecot.stop();
  rmSync(dir, { recursive: true, force: true });
}
