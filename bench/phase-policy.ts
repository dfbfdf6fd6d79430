// Policy-server mode (issue 17), in one run: Dovecot alone against a second Dovecot, tuned the
// same, that asks mailgate's /dovecot about every login (auth policy: allow, allow after auth,
// report), and nginx with its static auth_http against nginx asking mailgate's /nginx (which
// replays each login to Dovecot before nginx logs in there itself). Plaintext IMAP
// LOGIN+LOGOUT, closed loop, rounds interleave the four targets; logins/s and CPU per login of
// every process that serves the login (Dovecot, nginx, mailgate), and mailgate's policy counters.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DovecotInstance, DovecotUser } from '../test/helpers/dovecot.js';
import { dovecotPids, loadgen, loopbackSources, pctOf, round, sleep, type LoadResult } from './lib.js';
import { cpuSeconds } from './procstat.js';
import { startMailgate, startNginx, startTunedDovecot, type Proc } from './services.js';

/** The processes a target's CPU is read from, by what they are. */
export type Part = 'dovecot' | 'nginx' | 'mailgate';
const PARTS: Part[] = ['dovecot', 'nginx', 'mailgate'];

export interface PolicyTarget {
  name: string;
  port: number;
  parts: Partial<Record<Part, () => number[]>>;
  /** mailgate's admin endpoint: its policy counters are read before and after each run. */
  adminPort?: number;
}

export interface PolicySettings {
  rounds: number;
  warmupMs: number;
  durationMs: number;
  concurrency: number;
  /** One unmeasured run per target first: mailgate starts cold (its JIT, Dovecot's
   *  connections to it), the C servers barely notice. */
  warmPassMs: number;
}

export interface PolicyRow {
  target: string;
  concurrency: number;
  logins: number;
  failed: number;
  perSec: number | null;
  p50ms: number | null;
  p99ms: number | null;
  /** By part; the sum is totalCpuMsPerLogin. */
  cpuMsPerLogin: Partial<Record<Part, number | null>>;
  /** Dovecot's part by process (auth, imap-login, imap, …): where its extra work goes. */
  dovecotCpuMsByProcess: Record<string, number>;
  totalCpuMsPerLogin: number | null;
  /** mailgate's policy requests per login, by mode/answer (mailgate_policy_requests_total). */
  policyRequestsPerLogin: Record<string, number> | null;
  /** mailgate's mean answer time (mailgate_policy_request_seconds; /nginx includes the backend login). */
  policyAnswerMs: number | null;
  loadgenCpuPct: number | null;
  samples?: string[];
}

/** What each comparison sets side by side: the front end alone and asking mailgate. */
export const POLICY_PAIRS = [
  { front: 'Dovecot', alone: 'dovecot', asking: 'dovecot+mailgate' },
  { front: 'nginx', alone: 'nginx-static', asking: 'nginx+mailgate' },
] as const;

interface Acc {
  /** The load generator's result of every measured run. */
  runs: LoadResult[];
  cpu: Record<Part, number>;
  dovecotBy: Record<string, number>;
  requests: Record<string, number>;
  answerSec: number;
  answers: number;
}

interface PolicyCounters {
  requests: Record<string, number>;
  seconds: number;
  count: number;
}

/** mailgate's policy counters from its /metrics (Prometheus text). */
async function policyCounters(adminPort: number): Promise<PolicyCounters> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const out: PolicyCounters = { requests: {}, seconds: 0, count: 0 };
  for (const m of text.matchAll(/^mailgate_policy_requests_total\{mode="([^"]+)",answer="([^"]+)"\} (\S+)$/gm)) out.requests[`${m[1]}/${m[2]}`] = Number(m[3]);
  for (const m of text.matchAll(/^mailgate_policy_request_seconds_(sum|count)\{mode="[^"]+"\} (\S+)$/gm)) {
    if (m[1] === 'sum') out.seconds += Number(m[2]);
    else out.count += Number(m[2]);
  }
  return out;
}

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
};

/** CPU seconds so far of these processes, summed by name (Dovecot's auth, imap-login, …). */
function cpuByName(pids: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of pids) out[comm(pid)] = (out[comm(pid)] ?? 0) + cpuSeconds([pid]);
  return out;
}

/** Dovecot reports a login to its policy server after answering the client: let the last
 *  reports (and LOGOUTs) be served before the CPU is read, the same pause for every target. */
const SETTLE_MS = 200;

async function once(t: PolicyTarget, s: PolicySettings, users: DovecotUser[], acc: Acc): Promise<void> {
  const pids = Object.fromEntries(PARTS.map((p) => [p, t.parts[p]?.() ?? []])) as Record<Part, number[]>;
  const cpu0 = PARTS.map((p) => cpuSeconds(pids[p]));
  const by0 = cpuByName(pids.dovecot);
  const m0 = t.adminPort ? await policyCounters(t.adminPort) : null;
  const r: LoadResult = await loadgen({
    mode: 'logins', host: '127.0.0.1', port: t.port, tls: 'none', concurrency: s.concurrency, warmupMs: s.warmupMs, durationMs: s.durationMs,
    users, sources: loopbackSources(s.concurrency), raw: true,
  });
  await sleep(SETTLE_MS);
  PARTS.forEach((p, i) => (acc.cpu[p] += cpuSeconds(pids[p]) - cpu0[i]!));
  for (const [name, sec] of Object.entries(cpuByName(pids.dovecot))) acc.dovecotBy[name] = (acc.dovecotBy[name] ?? 0) + sec - (by0[name] ?? 0);
  if (m0) {
    const m1 = await policyCounters(t.adminPort!);
    for (const [k, v] of Object.entries(m1.requests)) if (v - (m0.requests[k] ?? 0) > 0) acc.requests[k] = (acc.requests[k] ?? 0) + v - (m0.requests[k] ?? 0);
    acc.answerSec += m1.seconds - m0.seconds;
    acc.answers += m1.count - m0.count;
  }
  acc.runs.push(r);
}

const sum = (runs: LoadResult[], k: string) => runs.reduce((x, r) => x + (r[k] as number), 0);

function row(t: PolicyTarget, concurrency: number, a: Acc): PolicyRow {
  const sorted = Array.from(Float64Array.from(a.runs.flatMap((r) => r.raw.sessionMs as number[])).sort());
  const ok = sum(a.runs, 'ok');
  // Divided by every session of the runs, warm-up included, as the CPU was read around them.
  const sessions = sum(a.runs, 'sessionsAll');
  const perLogin = (x: number) => round((x * 1000) / sessions, 3);
  const samples = a.runs.flatMap((r) => r.samples as string[]);
  const cpuMsPerLogin = Object.fromEntries(PARTS.filter((p) => t.parts[p]).map((p) => [p, perLogin(a.cpu[p])]));
  return {
    target: t.name,
    concurrency,
    logins: ok,
    failed: sum(a.runs, 'total') - ok,
    perSec: round(ok / sum(a.runs, 'seconds'), 1),
    p50ms: round(pctOf(sorted, 50)),
    p99ms: round(pctOf(sorted, 99)),
    cpuMsPerLogin,
    dovecotCpuMsByProcess: Object.fromEntries(Object.entries(a.dovecotBy).map(([k, v]) => [k, perLogin(v)!])),
    totalCpuMsPerLogin: perLogin(PARTS.reduce((x, p) => x + (t.parts[p] ? a.cpu[p] : 0), 0)),
    policyRequestsPerLogin: t.adminPort ? Object.fromEntries(Object.entries(a.requests).map(([k, v]) => [k, round(v / sessions, 3)!])) : null,
    policyAnswerMs: a.answers ? round((a.answerSec * 1000) / a.answers, 3) : null,
    loadgenCpuPct: a.runs.length ? Math.max(...a.runs.map((r) => r.loadgenCpuPct as number)) : null,
    ...(samples.length ? { samples: samples.slice(0, 3) } : {}),
  };
}

/** The four targets, measured in interleaved rounds (the order rotates every round). */
export async function measurePolicy(targets: PolicyTarget[], s: PolicySettings, users: DovecotUser[], log: (s: string) => void): Promise<PolicyRow[]> {
  const accs = new Map<string, Acc>();
  for (const t of targets) {
    accs.set(t.name, { runs: [], cpu: { dovecot: 0, nginx: 0, mailgate: 0 }, dovecotBy: {}, requests: {}, answerSec: 0, answers: 0 });
  }
  for (const t of targets) {
    await loadgen({ mode: 'logins', host: '127.0.0.1', port: t.port, tls: 'none', concurrency: s.concurrency, warmupMs: 0, durationMs: s.warmPassMs, users, sources: loopbackSources(s.concurrency) });
  }
  for (let r = 0; r < s.rounds; r++) {
    for (const t of targets.map((_, i) => targets[(i + r) % targets.length]!)) {
      const a = accs.get(t.name)!;
      await once(t, s, users, a);
      const failed = sum(a.runs, 'total') - sum(a.runs, 'ok');
      log(`  policy c=${s.concurrency} ${t.name.padEnd(16)} round ${r + 1}: ${Math.round(sum(a.runs, 'ok') / sum(a.runs, 'seconds'))}/s so far${failed ? `, ${failed} failed` : ''}`);
    }
  }
  return targets.map((t) => row(t, s.concurrency, accs.get(t.name)!));
}

export interface PolicyPhaseEnv {
  dir: string;
  /** Dovecot alone, and the backend of both nginx targets. */
  dovecot: DovecotInstance;
  /** nginx with its static auth_http in front of that Dovecot. */
  nginx: Proc;
  users: DovecotUser[];
  log: (s: string) => void;
}

/** Starts the policy targets' servers (two policy-only mailgates, the Dovecot that asks one,
 *  the nginx that asks the other), measures, stops what it started. */
export async function policyPhase(env: PolicyPhaseEnv, s: PolicySettings): Promise<{ settings: PolicySettings; pairs: typeof POLICY_PAIRS; rows: PolicyRow[] }> {
  const started: { stop(): Promise<void> }[] = [];
  try {
    const forDovecot = await startMailgate({ name: 'mailgate-policy-dovecot', dir: join(env.dir, 'mailgate'), dovecot: env.dovecot, policyServer: {} });
    started.push(forDovecot);
    const forNginx = await startMailgate({ name: 'mailgate-policy-nginx', dir: join(env.dir, 'mailgate'), dovecot: env.dovecot, policyServer: { nginx: { imap: 'imap', pop3: 'pop3' } } });
    started.push(forNginx);
    const asking = await startTunedDovecot(env.users, { url: `http://127.0.0.1:${forDovecot.policyPort}/dovecot` });
    started.push(asking);
    const nginxAsking = await startNginx(join(env.dir, 'nginx-policy'), env.dovecot, `127.0.0.1:${forNginx.policyPort}/nginx`);
    started.push(nginxAsking);
    const dovecot = () => dovecotPids(env.dovecot.dir);
    const targets: PolicyTarget[] = [
      { name: 'dovecot', port: env.dovecot.ports.imap, parts: { dovecot } },
      { name: 'dovecot+mailgate', port: asking.ports.imap, parts: { dovecot: () => dovecotPids(asking.dir), mailgate: forDovecot.pids }, adminPort: forDovecot.adminPort! },
      { name: 'nginx-static', port: env.nginx.ports.imap, parts: { dovecot, nginx: env.nginx.pids } },
      { name: 'nginx+mailgate', port: nginxAsking.ports.imap, parts: { dovecot, nginx: nginxAsking.pids, mailgate: forNginx.pids }, adminPort: forNginx.adminPort! },
    ];
    env.log(`policy: Dovecot ${env.dovecot.ports.imap} / asking ${asking.ports.imap}, nginx ${env.nginx.ports.imap} / asking ${nginxAsking.ports.imap}`);
    return { settings: s, pairs: POLICY_PAIRS, rows: await measurePolicy(targets, s, env.users, env.log) };
  } finally {
    await Promise.allSettled(started.reverse().map((p) => p.stop()));
  }
}
