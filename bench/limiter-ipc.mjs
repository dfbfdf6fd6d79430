// What worker mode's shared memory store costs per decision: Policy.check + record in a
// node:cluster worker, with the memory store in the worker's own process and with the primary's
// memory store asked over IPC as workers ask it (src/cluster: IpcStore behind the resilient
// wrapper, serveStore in the primary). One decision at a time (latency) and 64 in flight
// (throughput); CPU per decision in the worker and in the primary; and one bare IPC round trip
// (store.peek). One JSON line per row. Run after `npm run build`:
//   node bench/limiter-ipc.mjs [decisions]
import cluster from 'node:cluster';
import { Channel, processPort, workerPort } from '../dist/cluster/channel.js';
import { IpcStore } from '../dist/cluster/ipc-store.js';
import { serveStore } from '../dist/cluster/store-host.js';
import { IPC_CALL_MS } from '../dist/cluster/worker.js';
import { systemClock } from '../dist/clock.js';
import { parseConfig } from '../dist/config/load.js';
import { KeyBuilder } from '../dist/limits/keys.js';
import { Policy } from '../dist/limits/policy.js';
import { createLogger } from '../dist/logging/logger.js';
import { MemoryStore } from '../dist/stores/memory.js';
import { ResilientStore } from '../dist/stores/resilient.js';
import { pct, runDecisions } from './decisions.mjs';

const N = Number(process.argv[2] ?? 20000);
const cpuUs = (u) => u.user + u.system;

if (cluster.isPrimary) {
  // The primary serves its store and says how much CPU it has used; nothing else.
  const store = new MemoryStore(systemClock);
  const worker = cluster.fork();
  const link = new Channel(workerPort(worker), 'the bench worker');
  serveStore(link, store);
  link.handle('cpu', () => cpuUs(process.cpuUsage()));
  worker.on('exit', (code) => process.exit(code ?? 1));
} else {
  const channel = new Channel(processPort(), 'the primary');
  const primaryCpu = () => channel.call('cpu', null, 5000);
  const rules = [
    { name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1000, window: '1h' },
    { name: 'user-logins', key: 'user', count: 'attempts', limit: 1000, window: '1h' },
    { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m', block: '30m' },
  ];
  const base = { listeners: [{ name: 'i', protocol: 'imap', listen: '127.0.0.1:1', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: 1 } } };
  const cfg = parseConfig({ ...base, limits: { keySecret: 'bench-secret-0123456789', rules } }, {});
  const log = createLogger('silent');

  async function measure(name, store, concurrency) {
    const policy = new Policy(cfg.limits, store, new KeyBuilder(cfg.limits.keySecret), systemClock);
    const p0 = await primaryCpu();
    const w0 = process.cpuUsage();
    const { secs, lat } = await runDecisions(policy, N, concurrency);
    const workerUs = cpuUs(process.cpuUsage(w0));
    const primaryUs = (await primaryCpu()) - p0;
    const row = {
      store: name, concurrency, decisions: N, perSec: Math.round(N / secs), p50ms: +pct(lat, 50).toFixed(3), p99ms: +pct(lat, 99).toFixed(3),
      workerCpuUsPerDecision: +(workerUs / N).toFixed(1), primaryCpuUsPerDecision: +(primaryUs / N).toFixed(1),
    };
    console.log(JSON.stringify(row));
    return row;
  }

  async function roundTrips(concurrency) {
    const n = Math.max(2000, N);
    let next = 0;
    const t0 = process.hrtime.bigint();
    const w0 = process.cpuUsage();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next++ < n) await channel.call('store.peek', ['bench:none'], 5000);
    }));
    const us = Number(process.hrtime.bigint() - t0) / 1e3;
    console.log(JSON.stringify({ roundTrip: 'store.peek', concurrency, calls: n, usPerCall: +(us / n).toFixed(1), workerCpuUsPerCall: +(cpuUs(process.cpuUsage(w0)) / n).toFixed(1) }));
  }

  const local = new MemoryStore(systemClock);
  const shared = () => new ResilientStore(new IpcStore(channel, IPC_CALL_MS), new MemoryStore(systemClock), 'local', 2 * IPC_CALL_MS, log);
  await measure('memory in process', local, 1);
  await measure('memory in process', local, 64);
  const ipc = shared();
  await measure('memory over IPC', ipc, 1);
  await measure('memory over IPC', ipc, 64);
  await roundTrips(1);
  await roundTrips(64);
  if (ipc.health.fallbacks > 0) console.log(JSON.stringify({ warning: `${ipc.health.fallbacks} calls fell back to local counters` }));
  process.exit(0);
}
