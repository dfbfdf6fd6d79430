// `npm run bench` (after `npm run build`, which the npm script runs first): starts Dovecot,
// redis-server, nginx's mail proxy and mailgate (memory and Redis store) on loopback, runs
// every phase, writes bench/results/<timestamp>.json and prints the summary table.
// Flags: --quick (or `npm run bench --quick`), --profile / --no-profile, --only=a,b
// (phases: logins, transfer, redis, flood, noread, policy, groups, submission, profile, memory, limiter, attacks), --attacks=a,b
// (attack scenarios to run: lockout, one-shot, spray, stuffing, office-nat, low-and-slow), --keep (temp dirs),
// --baseline=DIR (another build's dist/, measured as `mailgate-before` with the memory store in
// the same rounds: how a change moves the figures on one noisy machine, in one run; a build with
// worker mode also as `mailgate-before-N-workers` beside `mailgate-N-workers`),
// --workers=N (the logins phase's worker-mode target, `mailgate-N-workers`: the memory store
// shared by the primary; default one per core, at least 2), --policy-clients=N (the policy
// phase's concurrent clients, default 16).
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startRedis } from '../test/helpers/redis.js';
import { dovecotPids, fdLimit, round } from './lib.js';
import { attacksPhase } from './phase-attacks.js';
import { attemptCosts, floodPhase } from './phase-flood.js';
import { groupsPhase } from './phase-groups.js';
import { loginPhase, type Target } from './phase-logins.js';
import { memoryPhase } from './phase-memory.js';
import { noreadPhase } from './phase-noread.js';
import { policyPhase } from './phase-policy.js';
import { profilePhase } from './phase-profile.js';
import { redisTripsPhase } from './phase-redis.js';
import { submissionPhase } from './phase-submission.js';
import { seedBigMessage, transferPhase } from './phase-transfer.js';
import { render } from './report.mjs';
import { antiLockoutLimits, benchUsers, startFloor, startMailgate, startNginx, startTunedDovecot, type Proc } from './services.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick') || process.env.npm_config_quick === 'true';
const only = argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const wants = (phase: string) => !only || only.includes(phase);
const profile = argv.includes('--profile') || (!quick && !argv.includes('--no-profile'));
const baseline = argv.find((a) => a.startsWith('--baseline='))?.slice(11);
/** --rounds=N: more interleaved rounds of the login phase, for a before/after on a noisy machine. */
const rounds = Number(argv.find((a) => a.startsWith('--rounds='))?.slice(9)) || undefined;
/** --workers=N: worker processes of the logins phase's worker-mode target. */
const workers = Math.max(2, Number(argv.find((a) => a.startsWith('--workers='))?.slice(10)) || os.availableParallelism());

const FLOOD_SCENARIOS = [
  { name: 'few-ips', sources: 50 },
  { name: 'many-ips', sources: 1000 },
];
/** --policy-clients=N: the policy phase's closed-loop clients, the same for every target. */
const POLICY_CLIENTS = Number(argv.find((a) => a.startsWith('--policy-clients='))?.slice(17)) || 16;
/** The groups phase's closed-loop clients: as the policy phase's, a load that keeps the two
 *  cores of the machines here busy. */
const GROUPS_CLIENTS = 16;
const settings = quick
  ? {
      logins: { rounds: 1, warmupMs: 250, warmPassMs: 500, durationMs: 1000, concurrencies: [8, 64] },
      transfer: { bytes: 50 * 1048576, reps: 3 },
      memory: { counts: [1000] },
      limiter: { decisions: 5000 },
      flood: { legitRate: 50, attackRate: 500, durationMs: 2500, scenarios: FLOOD_SCENARIOS, costRate: 300, costMs: 2000 },
      noread: { flooders: [3, 15, 60], addresses: 20, rate: 20, durationMs: 2000, warmupMs: 500 },
      policy: { rounds: 1, warmupMs: 250, durationMs: 1000, concurrency: POLICY_CLIENTS, warmPassMs: 1000 },
      groups: { rounds: 1, warmupMs: 250, durationMs: 1000, concurrency: GROUPS_CLIENTS, warmPassMs: 500, lookups: 20_000 },
      submission: { reps: 1, loads: [{ name: 'small', sessions: 4, messages: 200, bytes: 4096 }, { name: 'large', sessions: 1, messages: 2, bytes: 8 << 20 }] },
      redisTrips: { seconds: 1 },
      profile: { seconds: 3 },
    }
  : {
      logins: { rounds: 2, warmupMs: 500, warmPassMs: 3000, durationMs: 3000, concurrencies: [8, 64] },
      transfer: { bytes: 50 * 1048576, reps: 9 },
      memory: { counts: [1000, 10000] },
      limiter: { decisions: 20000 },
      flood: { legitRate: 50, attackRate: 500, durationMs: 6000, scenarios: FLOOD_SCENARIOS, costRate: 300, costMs: 5000 },
      noread: { flooders: [3, 15, 60], addresses: 20, rate: 20, durationMs: 8000, warmupMs: 1000 },
      policy: { rounds: 4, warmupMs: 500, durationMs: 3000, concurrency: POLICY_CLIENTS, warmPassMs: 3000 },
      groups: { rounds: 6, warmupMs: 500, durationMs: 3000, concurrency: GROUPS_CLIENTS, warmPassMs: 1500, lookups: 100_000 },
      submission: { reps: 5, loads: [{ name: 'small', sessions: 4, messages: 1000, bytes: 4096 }, { name: 'large', sessions: 1, messages: 4, bytes: 32 << 20 }] },
      redisTrips: { seconds: 2 },
      profile: { seconds: 5 },
    };

const t0 = Date.now();
const log = (s: string) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${s}\n`);
const sh = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
};

function machine() {
  return {
    cpus: os.availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?',
    memMiB: Math.round(os.totalmem() / 1048576),
    kernel: os.release(),
    node: process.version,
    nginx: sh('/usr/sbin/nginx', ['-v']).replace('nginx version: ', ''),
    dovecot: sh('/usr/sbin/dovecot', ['--version']),
    redis: /v=(\S+)/.exec(sh('/usr/bin/redis-server', ['--version']))?.[1] ?? '?',
    fdLimit: 0,
    // What was measured: the commit, and how many files under src/ differed from it.
    commit: sh('git', ['rev-parse', '--short', 'HEAD']),
    srcFilesChanged: sh('git', ['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length,
    loadStart: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    loadEnd: null as string | null,
  };
}

const startedAt = new Date().toISOString();
const stamp = startedAt.replace(/[:.]/g, '-');
const resultsDir = new URL('./results/', import.meta.url).pathname;
const keepDir = join(resultsDir, 'tmp');
mkdirSync(keepDir, { recursive: true });
const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-bench-'));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const res: Record<string, any> = { startedAt, mode: quick ? 'quick' : 'full', settings, machine: machine() };
res.machine.fdLimit = await fdLimit();
res.machine.workers = workers;
log(`mailgate benchmark (${res.mode}) in ${dir}; ${res.machine.cpus} CPUs, load ${res.machine.loadStart}`);

const users = benchUsers(200);
const bigbox = { user: 'bigbox', pass: 'bigbox-pass' };
const dovecot = await startTunedDovecot([...users, bigbox]);
const redis = await startRedis();
const running: Proc[] = [];
const stopAll = async () => {
  await Promise.allSettled(running.splice(0).map((p) => p.stop()));
};
process.once('SIGINT', () => {
  void stopAll().then(() => Promise.allSettled([dovecot.stop(), redis.stop()])).then(() => process.exit(130));
});

try {
  const backendPids = () => dovecotPids(dovecot.dir);
  const nginx = await startNginx(join(dir, 'nginx'), dovecot);
  const mgMem = await startMailgate({ name: 'mailgate-memory', dir: join(dir, 'mailgate'), dovecot });
  const mgRedis = await startMailgate({ name: 'mailgate-redis', dir: join(dir, 'mailgate'), dovecot, redisUrl: redis.url });
  const floor = await startFloor(dovecot);
  running.push(nginx, mgMem, mgRedis, floor);
  // Worker mode against mailgate-memory (one process): the logins phase only.
  const mgWorkers = wants('logins') ? await startMailgate({ name: `mailgate-${workers}-workers`, dir: join(dir, 'mailgate'), dovecot, workers }) : null;
  if (mgWorkers) running.push(mgWorkers);
  const before = baseline ? await startMailgate({ name: 'mailgate-before', dir: join(dir, 'mailgate'), dovecot, dist: baseline }) : null;
  if (before) running.push(before);
  // A baseline that has worker mode is measured in it too, beside mailgate-N-workers.
  const beforeWorkers =
    baseline && mgWorkers && existsSync(join(baseline, 'cluster')) ? await startMailgate({ name: `mailgate-before-${workers}-workers`, dir: join(dir, 'mailgate'), dovecot, dist: baseline, workers }) : null;
  if (beforeWorkers) running.push(beforeWorkers);
  log(`dovecot imap ${dovecot.ports.imap}, nginx ${nginx.ports.imap}, mailgate ${mgMem.ports.imap} (memory) ${mgRedis.ports.imap} (redis ${redis.port})`);
  const targets: Target[] = [
    { name: 'direct', port: dovecot.ports.imap, pids: () => [] },
    { name: 'nginx', port: nginx.ports.imap, pids: nginx.pids },
    { name: 'mailgate-memory', port: mgMem.ports.imap, pids: mgMem.pids },
    { name: 'mailgate-redis', port: mgRedis.ports.imap, pids: mgRedis.pids, redisPort: redis.port },
    { name: 'node-floor', port: floor.ports.imap, pids: floor.pids },
    ...(before ? [{ name: 'mailgate-before', port: before.ports.imap, pids: before.pids }] : []),
  ];
  const loginTargets: Target[] = [...targets, ...[mgWorkers, beforeWorkers].flatMap((p) => (p ? [{ name: p.name, port: p.ports.imap, pids: p.pids }] : []))];

  if (wants('logins')) {
    log('IMAP LOGIN+LOGOUT');
    res.logins = await loginPhase(loginTargets, { ...settings.logins, ...(rounds ? { rounds } : {}), users, backendPids, log });
  }
  if (wants('transfer')) {
    log(`spliced throughput: APPEND ${settings.transfer.bytes / 1048576} MiB to Dovecot`);
    await seedBigMessage(dovecot.ports.imap, bigbox, settings.transfer.bytes);
    res.transfer = await transferPhase(
      [
        { name: 'direct', imapPort: dovecot.ports.imap, pop3Port: dovecot.ports.pop3, pids: () => [] },
        { name: 'nginx', imapPort: nginx.ports.imap, pop3Port: nginx.ports.pop3, pids: nginx.pids },
        { name: 'mailgate-memory', imapPort: mgMem.ports.imap, pop3Port: mgMem.ports.pop3, pids: mgMem.pids },
        { name: 'mailgate-redis', imapPort: mgRedis.ports.imap, pop3Port: mgRedis.ports.pop3, pids: mgRedis.pids },
        ...(before ? [{ name: 'mailgate-before', imapPort: before.ports.imap, pop3Port: before.ports.pop3, pids: before.pids }] : []),
      ],
      { reps: settings.transfer.reps, user: bigbox, log },
    );
  }
  if (wants('redis')) {
    log('Redis round trips per login (MONITOR)');
    res.redisTrips = await redisTripsPhase(mgRedis.ports.imap, redis.port, users, settings.redisTrips.seconds);
    log(`  ${res.redisTrips.successfulLogin.perAttempt} per successful login, ${res.redisTrips.failedLogin.perAttempt} per failed login`);
  }
  if (wants('flood')) {
    const mgGuard = await startMailgate({ name: 'mailgate-anti-lockout', dir: join(dir, 'mailgate'), dovecot, limits: antiLockoutLimits() });
    running.push(mgGuard);
    log(`brute-force flood: ${settings.flood.attackRate}/s failing logins vs ${settings.flood.legitRate}/s legitimate`);
    res.flood = await floodPhase(
      [
        { name: 'mailgate-memory', port: mgMem.ports.imap, pids: mgMem.pids },
        { name: 'mailgate-redis', port: mgRedis.ports.imap, pids: mgRedis.pids, redisPort: redis.port },
        ...(before ? [{ name: 'mailgate-before', port: before.ports.imap, pids: before.pids }] : []),
        // A configuration, not another proxy: the README's anti-lockout setup against the
        // attack that stays under every per-IP limit (not counted in the targets).
        { name: 'mailgate-anti-lockout', port: mgGuard.ports.imap, pids: mgGuard.pids, scenarios: ['many-ips'] },
        // Context, not a target: the same flood straight at Dovecot shows what the machine
        // itself does with it (no limits there, so only the many-addresses case).
        ...(quick ? [] : [{ name: 'direct', port: dovecot.ports.imap, pids: () => [], scenarios: ['many-ips'] }]),
      ],
      { ...settings.flood, users, log },
    );
    log(`what an attempt costs the proxy: served, refused at login, refused at connect (${settings.flood.costRate}/s)`);
    const refuser = await startFloor(dovecot, 'refuse');
    running.push(refuser);
    res.attemptCosts = await attemptCosts(
      [
        { name: 'mailgate-memory', port: mgMem.ports.imap, pids: mgMem.pids },
        { name: 'mailgate-redis', port: mgRedis.ports.imap, pids: mgRedis.pids },
        // The Node floors: a bare relay serving, and a bare server refusing every connection.
        { name: 'node-floor', port: floor.ports.imap, pids: floor.pids, kinds: ['served'] },
        { name: 'node-floor-refuse', port: refuser.ports.imap, pids: refuser.pids, kinds: ['refused-at-connect'] },
      ],
      { rate: settings.flood.costRate, durationMs: settings.flood.costMs, users, log },
    );
  }
  if (wants('noread')) {
    log(`no-read flood: ${settings.noread.flooders.join(', ')} clients pipelining CAPABILITY and never reading, vs ${settings.noread.rate} logins/s`);
    res.noread = await noreadPhase(
      [
        { name: 'direct', port: dovecot.ports.imap, pids: backendPids },
        { name: 'mailgate-memory', port: mgMem.ports.imap, pids: mgMem.pids },
        ...(before ? [{ name: 'mailgate-before', port: before.ports.imap, pids: before.pids }] : []),
      ],
      { ...settings.noread, users, log },
    );
  }
  if (wants('policy')) {
    log(`policy server: Dovecot and nginx alone vs asking mailgate, ${settings.policy.concurrency} clients`);
    res.policy = await policyPhase({ dir, dovecot, nginx, users, log }, settings.policy);
  }
  if (wants('groups')) {
    log(`address groups: no groups vs GeoIP, a Tor file, a DNS blocklist (miss, listed, hit, silent), ${settings.groups.concurrency} clients through a PROXY listener`);
    res.groups = await groupsPhase({ dir: join(dir, 'groups'), dovecot, users, log }, settings.groups);
  }
  if (wants('submission')) {
    log('submission: messages through the submission listener to Dovecot relaying to a sink, splice vs the sending tracker');
    res.submission = await submissionPhase({ dir, log, ...settings.submission });
  }
  await stopAll();
  if (profile && wants('profile')) {
    log('profile: mailgate (memory store) under node --cpu-prof');
    res.profile = await profilePhase({ dir: join(dir, 'profile'), dovecot, users, seconds: settings.profile.seconds, log });
    for (const [name, p] of Object.entries(res.profile as Record<string, { file: string }>)) {
      const kept = join(keepDir, `${stamp}-${name}.cpuprofile`);
      copyFileSync(p.file, kept);
      p.file = kept;
    }
  }
  if (wants('memory')) {
    log(`memory per idle connection at ${settings.memory.counts.join(', ')} (fresh proxy process each)`);
    res.memory = await memoryPhase(
      [
        { name: 'mailgate', singleProcess: true, start: () => startMailgate({ name: 'mailgate-idle', dir: join(dir, 'mailgate'), dovecot }) },
        ...(baseline ? [{ name: 'mailgate-before', singleProcess: true, start: () => startMailgate({ name: 'mailgate-before-idle', dir: join(dir, 'mailgate'), dovecot, dist: baseline }) }] : []),
        { name: 'nginx', singleProcess: false, start: () => startNginx(join(dir, 'nginx-idle'), dovecot) },
        // Node's own share (bench/floor-proxy.mjs: greeting, STARTTLS, relay): what a Node process
        // holds per connection before mailgate adds anything.
        { name: 'node-floor', singleProcess: true, start: () => startFloor(dovecot) },
      ],
      { counts: settings.memory.counts, users, fdLimit: res.machine.fdLimit, log },
    );
  }
  if (wants('limiter')) {
    log('limiter decisions in process (bench/limiter.mjs: memory, Redis, Redis Cluster of 1 and of 3 primaries, Redis down)');
    const out = execFileSync(process.execPath, [new URL('./limiter.mjs', import.meta.url).pathname, String(settings.limiter.decisions)], { encoding: 'utf8' });
    res.limiter = out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    log('limiter decisions with the memory store in the primary, asked over IPC by a worker (bench/limiter-ipc.mjs)');
    const ipc = execFileSync(process.execPath, [new URL('./limiter-ipc.mjs', import.meta.url).pathname, String(settings.limiter.decisions)], { encoding: 'utf8' });
    res.limiterIpc = ipc.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  }
  if (wants('attacks')) {
    log('attacks against the shipped config (bench/phase-attacks.ts; its own Dovecot, auth penalty on)');
    const scenarios = argv.find((a) => a.startsWith('--attacks='))?.slice(10).split(',');
    res.attacks = await attacksPhase({ quick, log, ...(scenarios ? { scenarios } : {}) });
  }
} finally {
  await stopAll();
  await Promise.allSettled([dovecot.stop(), redis.stop()]);
  if (!argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
}

res.machine.loadEnd = os.loadavg().map((x) => x.toFixed(2)).join(' ');
res.seconds = round((Date.now() - t0) / 1000, 1);
const file = join(resultsDir, `${stamp}.json`);
writeFileSync(file, `${JSON.stringify(res, null, 2)}\n`);
process.stdout.write(`\n${render(res)}\n\nresults: ${file}\n`);
process.exit(0);
