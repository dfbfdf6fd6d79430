// heap-breakdown.mjs's figures for idle spliced TLS sessions: mailgate in process in front of
// the bench's tuned Dovecot; the load generator (its own process) opens N connections, STARTTLS,
// LOGIN, and holds them. Prints RSS (no forced GC, then after one), JS heap and external memory
// per connection; with `snap`, JS heap growth by constructor too (heap snapshots leave RSS low).
// Run after `npm run build`: NODE_OPTIONS=--expose-gc npx vite-node bench/heap-spliced.ts [N] [snap]
// (DIST=another build's dist/ measures that build).
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import v8 from 'node:v8';
import { benchUsers, startTunedDovecot } from './services.js';

const dist = process.env.DIST ?? new URL('../dist', import.meta.url).pathname;
const { parseConfig } = await import(`${dist}/config/load.js`);
const { createLogger } = await import(`${dist}/logging/logger.js`);
const { startProxy } = await import(`${dist}/main.js`);
const N = Number(process.argv[2] ?? 1000);
const snap = process.argv[3] === 'snap';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with NODE_OPTIONS=--expose-gc');

const users = benchUsers(200);
const dovecot = await startTunedDovecot(users);
const port = await new Promise<number>((r) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const free = (s.address() as net.AddressInfo).port;
    s.close(() => r(free));
  });
});
const cfg = parseConfig({
  listeners: [{ name: 'imap', protocol: 'imap', listen: `127.0.0.1:${port}`, tls: 'starttls', requireTls: false, backend: 'b' }],
  tls: { cert: dovecot.cert.certPath, key: dovecot.cert.keyPath },
  backends: { b: { host: '127.0.0.1', port: dovecot.ports.imap } },
  limits: { keySecret: 'bench-key-secret-0123456789abcdef', connections: { perIp: 1_000_000, total: 1_000_000 } },
  timeouts: { preauth: '30m' },
}, {});
const proxy = await startProxy(cfg, { log: createLogger('warn') });
const sources = Array.from({ length: 1000 }, (_, i) => `127.${1 + Math.floor(i / 250)}.0.${1 + (i % 250)}`);

async function hold(count: number) {
  const spec = { mode: 'idle', host: '127.0.0.1', port, tls: 'starttls', login: true, users, proto: 'imap', count, sources, openConcurrency: 64 };
  const child = spawn(process.execPath, [new URL('./loadgen.mjs', import.meta.url).pathname, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const ready = JSON.parse((await lines.next()).value as string) as { alive: number; failed: number };
  return { ready, close: async () => void (child.stdin!.write('close\n'), await lines.next()) };
}

async function byConstructor(): Promise<Map<string, { count: number; size: number }>> {
  const chunks: Buffer[] = [];
  for await (const c of v8.getHeapSnapshot()) chunks.push(c as Buffer);
  const s = JSON.parse(Buffer.concat(chunks).toString());
  const f: string[] = s.snapshot.meta.node_fields;
  const types: string[] = s.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((k) => f.indexOf(k)) as [number, number, number];
  const by = new Map<string, { count: number; size: number }>();
  for (let i = 0; i < s.nodes.length; i += f.length) {
    const type = types[s.nodes[i + iType]]!;
    const k = type === 'object' || type === 'native' ? s.strings[s.nodes[i + iName]] : type === 'closure' ? `closure ${s.strings[s.nodes[i + iName]]}` : `(${type})`;
    const e = by.get(k) ?? { count: 0, size: 0 };
    e.count++;
    e.size += s.nodes[i + iSize];
    by.set(k, e);
  }
  return by;
}

const settle = async () => {
  await new Promise((r) => setTimeout(r, 500));
  gc();
  gc();
};
const warm = await hold(200);
await warm.close();
await settle();
const m0 = process.memoryUsage();
const s0 = snap ? await byConstructor() : null;
const h = await hold(N);
await new Promise((r) => setTimeout(r, 1500));
const noGc = process.memoryUsage();
await settle();
const m1 = process.memoryUsage();
const held = h.ready.alive;
const per = (a: number, b: number) => +((a - b) / held / 1024).toFixed(2);
console.log(JSON.stringify({ held, failed: h.ready.failed, perConnKiB: { rssNoGc: per(noGc.rss, m0.rss), rss: per(m1.rss, m0.rss), heapUsed: per(m1.heapUsed, m0.heapUsed), external: per(m1.external, m0.external) } }));
if (s0) {
  const rows = [...(await byConstructor())].map(([k, e]) => ({ k, size: (e.size - (s0.get(k)?.size ?? 0)) / held, count: (e.count - (s0.get(k)?.count ?? 0)) / held }));
  for (const r of rows.filter((r) => r.size > 0).sort((a, b) => b.size - a.size).slice(0, 30)) console.log(`  ${r.size.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)}×  ${r.k}`);
}
await h.close();
await proxy.stop();
await dovecot.stop();
process.exit(0);
