// Brute-force flood: legitimate clients arrive at a steady rate from their own addresses,
// once alone and once while an attacker sends failing logins (wrong passwords for the same
// accounts) from many addresses in 127.1.0.0/16. Their success rate and p99, unloaded vs
// under the flood. mailgate only: nginx does no limiting.
import type { DovecotUser } from '../test/helpers/dovecot.js';
import { diffCalls, loadgen, loopbackSources, redisCommandCalls, round, sleep, type LoadResult } from './lib.js';
import { cpuSeconds } from './procstat.js';

export interface FloodTarget {
  name: string;
  port: number;
  pids: () => number[];
  redisPort?: number;
}

export interface FloodOptions {
  legitRate: number;
  attackRate: number;
  durationMs: number;
  /** Attacker address counts: few (each is blocked by ip-failures after 10 failures, so the
   *  flood turns into cheap refusals) and many (each stays under every per-IP limit, so every
   *  attempt reaches the backend: the worst case for the proxy and for Dovecot). */
  scenarios: { name: string; sources: number }[];
  users: DovecotUser[];
  log: (s: string) => void;
}

const legitSummary = (r: LoadResult) => ({
  attempts: r.total as number,
  ok: r.ok as number,
  successRate: r.successRate as number,
  p50ms: r.sessionMs.p50 as number,
  p99ms: r.sessionMs.p99 as number,
  failures: r.total - r.ok,
  samples: r.samples as string[],
});

export async function floodPhase(targets: (FloodTarget & { scenarios?: string[] })[], o: FloodOptions) {
  const rows = [];
  const legitSpec = (port: number) => ({
    mode: 'logins', host: '127.0.0.1', port, tls: 'none', rate: o.legitRate, durationMs: o.durationMs, users: o.users, sources: loopbackSources(20),
  });
  for (const t of targets) {
    const u = legitSummary(await loadgen(legitSpec(t.port)));
    for (const sc of o.scenarios.filter((x) => !t.scenarios || t.scenarios.includes(x.name))) {
      const pids = t.pids();
      const r0 = t.redisPort ? await redisCommandCalls(t.redisPort) : null;
      const cpu0 = cpuSeconds(pids);
      // Attackers guess passwords for the same accounts the legitimate clients use; each
      // scenario has its own addresses (127.1.0.0/16, 127.3.0.0/16), so blocks from one do
      // not carry into the other.
      const attackP = loadgen({
        mode: 'logins', host: '127.0.0.1', port: t.port, tls: 'none', rate: o.attackRate, durationMs: o.durationMs + 1000, users: o.users,
        sources: loopbackSources(sc.sources, sc.sources < 500 ? 1 : 3), wrongPassword: true, maxInflight: 2000,
      });
      await sleep(1000); // let the flood reach its rate first
      const loaded = await loadgen(legitSpec(t.port));
      const attack = await attackP;
      const cpu = cpuSeconds(pids) - cpu0;
      const calls = r0 ? diffCalls(r0, await redisCommandCalls(t.redisPort!)) : null;
      const l = legitSummary(loaded);
      rows.push({
        target: t.name,
        scenario: sc.name,
        attackSources: sc.sources,
        unloaded: u,
        underFlood: l,
        p99Ratio: u.p99ms ? round(l.p99ms / u.p99ms) : null,
        attack: {
          attempts: attack.total,
          perSec: attack.attemptsPerSec,
          fail: attack.fail,
          limited: attack.limited,
          ok: attack.ok,
          error: attack.error,
          other: attack.other,
          skipped: attack.skipped,
          p50ms: attack.allMs.p50,
        },
        proxyCpuPct: pids.length ? round((cpu / ((o.durationMs + 1000) / 1000)) * 100, 0) : null,
        ...(calls ? { redisScriptCalls: (calls.evalsha ?? 0) + (calls.eval ?? 0) } : {}),
      });
      o.log(`  flood ${sc.name.padEnd(11)} ${t.name.padEnd(16)} legit ok ${l.ok}/${l.attempts} p99 ${l.p99ms} ms (alone ${u.p99ms} ms); attack ${attack.attemptsPerSec}/s: ${attack.fail} wrong password, ${attack.limited} refused`);
    }
  }
  return rows;
}

export interface CostRow {
  target: string;
  kind: 'served' | 'refused-at-login' | 'refused-at-connect';
  attempts: number;
  /** How many of them reached the backend (the first guesses, before a block). */
  reachedBackend: number;
  cpuMsPerAttempt: number | null;
}

/** What one attempt costs the proxy, at a steady open-loop rate: a login served (right
 *  password, the backend says OK, the session spliced and ended), an attempt refused at login
 *  (a guessed account whose ip+user pair is blocked: the pair-failures rule, checked after the
 *  LOGIN command), and one refused at connect (an address the ip-failures rule blocks: the
 *  goodbye before the greeting). Issue 22 wants a refusal an order of magnitude cheaper than
 *  a served login. Each kind from its own addresses, so no block carries into the next. A
 *  target may measure some kinds only (the Node floors: the bare relay serves, the bare
 *  refuser refuses every connection). */
export async function attemptCosts(targets: (FloodTarget & { kinds?: CostRow['kind'][] })[], o: { rate: number; durationMs: number; users: DovecotUser[]; log: (s: string) => void }): Promise<CostRow[]> {
  const rows: CostRow[] = [];
  const kinds = [
    // 20 addresses, the bench's users, right passwords.
    { kind: 'served', sources: loopbackSources(20, 20), users: o.users, wrong: false },
    // 5 addresses guessing one account: 5 failures each block the pair, never the address.
    { kind: 'refused-at-login', sources: loopbackSources(5, 21), users: o.users.slice(0, 1), wrong: true },
    // 5 addresses guessing every account: 10 failures each block the address.
    { kind: 'refused-at-connect', sources: loopbackSources(5, 22), users: o.users, wrong: true },
  ] as const;
  for (const t of targets) {
    for (const k of kinds.filter((x) => !t.kinds || t.kinds.includes(x.kind))) {
      const pids = t.pids();
      const cpu0 = cpuSeconds(pids);
      const r = await loadgen({ mode: 'logins', host: '127.0.0.1', port: t.port, tls: 'none', rate: o.rate, durationMs: o.durationMs, users: k.users, sources: k.sources, ...(k.wrong ? { wrongPassword: true, maxInflight: 2000 } : {}) });
      const cpu = cpuSeconds(pids) - cpu0;
      const attempts = r.total as number;
      const reached = k.wrong ? (r.fail as number) : (r.ok as number);
      rows.push({ target: t.name, kind: k.kind, attempts, reachedBackend: reached, cpuMsPerAttempt: attempts ? round((cpu * 1000) / attempts, 3) : null });
      o.log(`  cost ${k.kind.padEnd(18)} ${t.name.padEnd(16)} ${rows.at(-1)!.cpuMsPerAttempt} ms CPU per attempt (${attempts} attempts, ${reached} reached the backend)`);
    }
  }
  return rows;
}
