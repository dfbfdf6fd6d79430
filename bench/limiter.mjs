// Limiter decision latency and Redis cost, in process: Policy.check + record with the memory
// store, the Redis store on one redis-server, on a Redis Cluster of 1 and of 3 primaries (its
// own redis-servers on free loopback ports), then with Redis killed (onError: local); one
// decision at a time (latency) and 64 in flight (throughput, as concurrent logins would).
// Rules: the README's four (ip-logins, ip-failures, pair-failures, user-logins) and known-good
// pairs, so an attempt spans two subjects (its address and its user), each in its own slot.
// Redis rows also give, per decision: the scripts the store sent (EVALSHA/EVAL from INFO
// commandstats on every primary; the commands a script runs inside are counted there too, so
// they are not summed), the round trips on the decision's path (hits sent together count as
// one, settles as one; measured one decision at a time) and aborts sent after it, Redis time
// inside those scripts (commandstats usec) and redis-server CPU (utime + stime from
// /proc/<pid>/stat, I/O included), summed over the nodes, and each primary's share of scripts.
// Run after `npm run build`: node bench/limiter.mjs [decisions]; one JSON line per row (the
// workload is decisions.mjs': copy both into another build's bench/ for a baseline).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../dist/config/load.js';
import { KeyBuilder } from '../dist/limits/keys.js';
import { Policy } from '../dist/limits/policy.js';
import { createLogger } from '../dist/logging/logger.js';
import { createStore } from '../dist/stores/factory.js';
import { systemClock } from '../dist/clock.js';
import { pct, runDecisions } from './decisions.mjs';

const N = Number(process.argv[2] ?? 20000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const cli = (port, ...args) => execFileSync('/usr/bin/redis-cli', ['-p', String(port), ...args]).toString();

/** One node's counters: scripts run, their time inside Redis (µs), the process's CPU (µs). */
function nodeStats({ port, pid }) {
  let calls = 0, usec = 0;
  for (const m of cli(port, 'INFO', 'commandstats').matchAll(/^cmdstat_(evalsha|eval):calls=(\d+),usec=(\d+)/gm)) { calls += Number(m[2]); usec += Number(m[3]); }
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { calls, usec, cpuUs: ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK };
}

/** Counts the store's scripts and, one decision at a time, the bursts they go out in. */
function tapScripts(client) {
  const t = { hitOrSettle: 0, trips: 0, aborts: 0 };
  let burst = false;
  // (A build from before the sharded layout has no abort script: run against it for a baseline.)
  for (const name of ['mgHit', 'mgSettle', 'mgAbort'].filter((n) => typeof client[n] === 'function')) {
    const f = client[name].bind(client);
    client[name] = (...args) => {
      if (name === 'mgAbort') t.aborts++;
      else if (!burst) {
        burst = true;
        t.trips++;
        queueMicrotask(() => (burst = false));
      }
      return f(...args);
    };
  }
  return t;
}

async function measure(name, store, cfg, concurrency = 1, nodes = []) {
  const policy = new Policy(cfg.limits, store, new KeyBuilder(cfg.limits.keySecret), systemClock);
  const tap = store.primary?.redis ? (store.primary.tap ??= tapScripts(store.primary.redis)) : null;
  const trips0 = tap ? { ...tap } : null;
  const before = nodes.map(nodeStats);
  const { secs, lat } = await runDecisions(policy, N, concurrency);
  const row = { store: name, concurrency, decisions: N, perSec: Math.round(N / secs), p50ms: +pct(lat, 50).toFixed(3), p99ms: +pct(lat, 99).toFixed(3), maxms: +lat.at(-1).toFixed(1) };
  if (nodes.length) {
    const d = nodes.map((n, i) => { const a = nodeStats(n); return { calls: a.calls - before[i].calls, usec: a.usec - before[i].usec, cpuUs: a.cpuUs - before[i].cpuUs }; });
    const calls = d.reduce((s, x) => s + x.calls, 0);
    Object.assign(row, {
      scriptsPerDecision: +(calls / N).toFixed(2),
      ...(concurrency === 1 && tap ? { roundTripsPerDecision: +((tap.trips - trips0.trips) / N).toFixed(2), abortsPerDecision: +((tap.aborts - trips0.aborts) / N).toFixed(3) } : {}),
      redisUsecPerDecision: +(d.reduce((s, x) => s + x.usec, 0) / N).toFixed(1),
      redisCpuUsPerDecision: +(d.reduce((s, x) => s + x.cpuUs, 0) / N).toFixed(1),
      scriptShareByPrimary: d.map((x) => +(x.calls / Math.max(1, calls)).toFixed(2)),
    });
  }
  console.log(JSON.stringify(row));
  return row;
}

/** A redis-server on a free port in `dir` (cluster mode with `cluster`); its port and pid. */
async function server(dir, cluster = false) {
  for (;;) {
    const port = await freePort();
    if (cluster && port + 10000 > 65535) continue;
    const extra = cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no', '--cluster-announce-ip', '127.0.0.1'] : [];
    const child = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      await sleep(50);
      try { if (cli(port, 'PING').trim() === 'PONG') return { port, pid: child.pid, child }; } catch { /* not up yet */ }
    }
    child.kill('SIGKILL');
  }
}

/** A Redis Cluster of `n` primaries, no replicas (one node: it takes every slot itself). */
async function cluster(dir, n) {
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push(await server(dir, true));
  if (n === 1) cli(nodes[0].port, 'CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  else execFileSync('/usr/bin/redis-cli', ['--cluster', 'create', ...nodes.map((x) => `127.0.0.1:${x.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
  for (const x of nodes) while (!/cluster_state:ok/.test(cli(x.port, 'CLUSTER', 'INFO'))) await sleep(100);
  return nodes;
}

const rules = [
  { name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1000, window: '1h' },
  { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m', block: '30m' },
  { name: 'pair-failures', key: 'ip+user', count: 'failures', limit: 5, window: '10m', block: '30m' },
  { name: 'user-logins', key: 'user', count: 'attempts', limit: 1000, window: '1h' },
];
const base = { listeners: [{ name: 'i', protocol: 'imap', listen: '127.0.0.1:1', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: 1 } } };
const limits = { keySecret: 'bench-secret-0123456789', knownGood: { ttl: '14d' }, rules };
const log = createLogger('silent');
const redisCfg = (redis) => parseConfig({ ...base, store: { type: 'redis', redis: { ...redis, timeout: '250ms', onError: 'local' } }, limits }, {});

const memCfg = parseConfig({ ...base, limits }, {});
const mem = createStore(memCfg.store, systemClock, log);
await measure('memory', mem, memCfg);
await measure('memory', mem, memCfg, 64);
await mem.close();

const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-bench-redis-'));
const started = [];
try {
  const single = await server(dir);
  started.push(single);
  const cfg = redisCfg({ url: `redis://127.0.0.1:${single.port}` });
  const rs = createStore(cfg.store, systemClock, log);
  await rs.ready?.(3000);
  await measure('redis', rs, cfg, 1, [single]);
  await measure('redis', rs, cfg, 64, [single]);

  for (const n of [1, 3]) {
    const nodes = await cluster(dir, n);
    started.push(...nodes);
    const ccfg = redisCfg({ cluster: nodes.map((x) => `127.0.0.1:${x.port}`) });
    const cs = createStore(ccfg.store, systemClock, log);
    await cs.ready?.(5000);
    await measure(`redis-cluster-${n}-primar${n === 1 ? 'y' : 'ies'}`, cs, ccfg, 1, nodes);
    await measure(`redis-cluster-${n}-primar${n === 1 ? 'y' : 'ies'}`, cs, ccfg, 64, nodes);
    await cs.close();
    for (const x of nodes) x.child.kill('SIGKILL');
  }

  single.child.kill('SIGKILL');
  await sleep(200);
  await measure('redis-down(onError=local)', rs, cfg);
  await rs.close();
} finally {
  for (const x of started) x.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
