// Limiter decision latency, in process: Policy.check + record with the memory store and
// with the Redis store on loopback (its own redis-server on a free port), then with Redis
// killed (onError: local); one decision at a time (latency) and 64 in flight (throughput, as
// concurrent logins would). Redis rows also give round trips per decision: EVALSHA/EVAL calls
// from INFO commandstats (the only commands the store sends per decision; the commands a
// script runs inside Redis are counted there too, so they are not summed).
// Run after `npm run build`: node bench/limiter.mjs [decisions]; one JSON line per row.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../dist/config/load.js';
import { KeyBuilder } from '../dist/limits/keys.js';
import { Policy } from '../dist/limits/policy.js';
import { createLogger } from '../dist/logging/logger.js';
import { createStore } from '../dist/stores/factory.js';
import { systemClock } from '../dist/clock.js';

const N = Number(process.argv[2] ?? 20000);
const freePort = () => new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function measure(name, store, cfg, concurrency = 1, redisPort = null) {
  const policy = new Policy(cfg.limits, store, new KeyBuilder(cfg.limits.keySecret), systemClock);
  const lat = [];
  const calls0 = redisPort ? redisCalls(redisPort) : 0;
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    for (let i = next++; i < N; i = next++) {
      const a = { protocol: 'imap', ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, user: `user${i % 5000}` };
      const s = process.hrtime.bigint();
      const d = await policy.check(a);
      await policy.record(d, i % 3 ? 'ok' : 'fail');
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((x, y) => x - y);
  const row = {
    store: name, concurrency, decisions: N, perSec: Math.round(N / secs), p50ms: +pct(lat, 50).toFixed(3), p99ms: +pct(lat, 99).toFixed(3), maxms: +lat.at(-1).toFixed(1),
    ...(redisPort ? { redisRoundTripsPerDecision: +((redisCalls(redisPort) - calls0) / N).toFixed(2) } : {}),
  };
  console.log(JSON.stringify(row));
  return row;
}

/** Scripts Redis has been asked to run so far (EVALSHA + EVAL calls). */
function redisCalls(port) {
  const out = execFileSync('/usr/bin/redis-cli', ['-p', String(port), 'INFO', 'commandstats']).toString();
  let n = 0;
  for (const m of out.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

const rules = [
  { name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1000, window: '1h' },
  { name: 'user-logins', key: 'user', count: 'attempts', limit: 1000, window: '1h' },
  { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m', block: '30m' },
];
const base = { listeners: [{ name: 'i', protocol: 'imap', listen: '127.0.0.1:1', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: 1 } } };
const log = createLogger('silent');

const memCfg = parseConfig({ ...base, limits: { rules } }, {});
const mem = createStore(memCfg.store, systemClock, log);
await measure('memory', mem, memCfg);
await measure('memory', mem, memCfg, 64);
await mem.close();

const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-bench-redis-'));
const port = await freePort();
const redis = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 300));
const redisCfg = parseConfig({ ...base, store: { type: 'redis', redis: { url: `redis://127.0.0.1:${port}`, timeout: '250ms', onError: 'local' } }, limits: { keySecret: 'bench-secret-0123456789', rules } }, {});
const rs = createStore(redisCfg.store, systemClock, log);
await rs.ready?.(3000);
await measure('redis', rs, redisCfg, 1, port);
await measure('redis', rs, redisCfg, 64, port);
redis.kill('SIGKILL');
await new Promise((r) => setTimeout(r, 200));
await measure('redis-down(onError=local)', rs, redisCfg);
await rs.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
