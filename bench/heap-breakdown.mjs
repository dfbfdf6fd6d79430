// Where mailgate's memory per idle connection goes: mailgate runs in this process (dist/),
// the load generator holds N idle pre-auth connections from its own process, and two heap
// snapshots (before, while held) are compared by constructor. Also splits the RSS delta into
// JS heap and the rest (sockets' native state, TLS, malloc).
// Run after `npm run build`: node --expose-gc bench/heap-breakdown.mjs [N] [plain|tls] [rss]
// A heap snapshot leaves the process's RSS inflated (its parse is freed to the allocator, which
// the connections then reuse), so the RSS figures of a run with snapshots are low: `rss` takes
// none and gives RSS (with and without a forced GC, as the bench's memory phase) and heap only.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import v8 from 'node:v8';
import { parseConfig } from '../dist/config/load.js';
import { createLogger } from '../dist/logging/logger.js';
import { startProxy } from '../dist/main.js';
import { generateDevCertificate } from '../dist/server/tls.js';

const N = Number(process.argv[2] ?? 1000);
const kind = process.argv[3] ?? 'plain';
const snapshots = process.argv[4] !== 'rss';
if (typeof globalThis.gc !== 'function') {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}

async function snapshotBy() {
  const chunks = [];
  for await (const c of v8.getHeapSnapshot()) chunks.push(c);
  const snap = JSON.parse(Buffer.concat(chunks).toString());
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((k) => f.indexOf(k));
  const by = new Map();
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const type = types[snap.nodes[i + iType]];
    const name = type === 'object' || type === 'closure' || type === 'native' ? snap.strings[snap.nodes[i + iName]] : `(${type})`;
    const k = `${type === 'closure' ? 'closure ' : ''}${name}`;
    const e = by.get(k) ?? { count: 0, size: 0 };
    e.count++;
    e.size += snap.nodes[i + iSize];
    by.set(k, e);
  }
  return by;
}

const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-heap-'));
await generateDevCertificate(join(dir, 'cert.pem'), join(dir, 'key.pem'));
const port = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const cfg = parseConfig({
  listeners: [{ name: 'imap', protocol: 'imap', listen: `127.0.0.1:${port}`, tls: 'starttls', requireTls: false, backend: 'b' }],
  tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
  backends: { b: { host: '127.0.0.1', port: 9 } },
  limits: { connections: { perIp: 1_000_000, total: 1_000_000 } },
  timeouts: { preauth: '30m' },
}, {});
const proxy = await startProxy(cfg, { log: createLogger('info') });

const sources = Array.from({ length: 200 }, (_, i) => `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`);
const hold = async (count) => {
  const child = spawn(process.execPath, [new URL('./loadgen.mjs', import.meta.url).pathname, JSON.stringify({ mode: 'idle', host: '127.0.0.1', port, tls: kind === 'tls' ? 'starttls' : 'none', count, sources, openConcurrency: 64 })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const ready = JSON.parse((await lines.next()).value);
  return { ready, close: async () => { child.stdin.write('close\n'); await lines.next(); } };
};

const settle = async () => {
  await new Promise((r) => setTimeout(r, 500));
  globalThis.gc();
  globalThis.gc();
};
const warm = await hold(200);
await warm.close();
await settle();
const m0 = process.memoryUsage();
const s0 = snapshots ? await snapshotBy() : new Map();
await settle();
const m0b = process.memoryUsage();
const h = await hold(N);
// As the bench's memory phase measures (no forced GC, 1.5 s after the last connection).
await new Promise((r) => setTimeout(r, 1500));
const m1NoGc = process.memoryUsage();
await settle();
const m1 = process.memoryUsage();
const s1 = snapshots ? await snapshotBy() : new Map();
const held = h.ready.alive;
const per = (a, b) => +((a - b) / held / 1024).toFixed(2);
console.log(JSON.stringify({ held, kind, perConnKiB: { rssNoGc: per(m1NoGc.rss, m0b.rss), rss: per(m1.rss, m0b.rss), heapTotal: per(m1.heapTotal, m0b.heapTotal), heapUsed: per(m1.heapUsed, m0.heapUsed), external: per(m1.external, m0.external), arrayBuffers: per(m1.arrayBuffers, m0.arrayBuffers) } }));
const rows = [];
for (const [k, e] of s1) {
  const b = s0.get(k) ?? { count: 0, size: 0 };
  if (e.size - b.size > 0) rows.push({ k, perConn: (e.size - b.size) / held, countPerConn: (e.count - b.count) / held });
}
rows.sort((a, b) => b.perConn - a.perConn);
console.log('JS heap growth per connection, by constructor (self size):');
for (const r of rows.slice(0, 25)) console.log(`  ${r.perConn.toFixed(0).padStart(6)} B  ${r.countPerConn.toFixed(2).padStart(6)}×  ${r.k}`);
await h.close();
await proxy.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
