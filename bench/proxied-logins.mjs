// Closed-loop plaintext IMAP logins through a PROXY-protocol listener, for the groups phase
// (bench/phase-groups.ts): each session sends a PROXY v1 header naming its client address, the
// next line of an address file (from `offset`, wrapping), so clients can be public networks a
// GeoIP database maps or a blocklist lists: loopback sources never are; optionally pausing
// before LOGIN (spec.pauseMs). A separate process, so
// its CPU is never counted with the proxy's. One JSON spec in argv[2]; prints one JSON line.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Conn, summary } from './loadgen-conn.mjs';

const spec = JSON.parse(process.argv[2] ?? '{}');
const addresses = readFileSync(spec.addressFile, 'utf8').split('\n').filter(Boolean);

/** PROXY v1 (haproxy's proxy-protocol.txt §2.1): the balancer's view of the client. */
function proxyHeader(ip, i) {
  const v6 = ip.includes(':');
  return `PROXY ${v6 ? 'TCP6' : 'TCP4'} ${ip} ${v6 ? '2001:db8::143' : '192.0.2.143'} ${1024 + (i % 60000)} 143\r\n`;
}

/** Connect, header, greeting, LOGIN, LOGOUT; the session's and the LOGIN answer's times. */
async function session(i) {
  const user = spec.users[i % spec.users.length];
  const ip = addresses[(spec.offset + i) % addresses.length];
  const t0 = performance.now();
  const c = new Conn(net.connect({ host: '127.0.0.1', port: spec.port }).setNoDelay(true));
  try {
    await c.connected();
    c.write(proxyHeader(ip, i));
    const greeting = await c.line();
    if (!greeting.startsWith('* OK')) return { ok: false, sample: greeting };
    // A client that waits before LOGIN (spec.pauseMs): the pace of a slow blocklist, without one.
    if (spec.pauseMs) await new Promise((r) => setTimeout(r, spec.pauseMs));
    const tl = performance.now();
    c.write(`l LOGIN ${user.user} ${user.pass}\r\n`);
    const reply = await c.tagged('l');
    const loginMs = performance.now() - tl;
    if (!reply.startsWith('l OK')) return { ok: false, sample: reply };
    c.write('o LOGOUT\r\n');
    await c.tagged('o').catch(() => undefined);
    return { ok: true, ms: performance.now() - t0, loginMs };
  } catch (err) {
    return { ok: false, sample: err.message };
  } finally {
    c.destroy();
  }
}

const cpu0 = process.cpuUsage();
const tBegin = performance.now();
const end = tBegin + spec.warmupMs + spec.durationMs;
let next = 0;
let measuring = false;
let tStart = 0;
const ms = [];
const loginMs = [];
const samples = [];
let total = 0;
setTimeout(() => {
  measuring = true;
  tStart = performance.now();
}, spec.warmupMs);
await Promise.all(
  Array.from({ length: spec.concurrency }, async () => {
    while (performance.now() < end) {
      const r = await session(next++);
      if (!measuring) continue;
      total++;
      if (r.ok) {
        ms.push(r.ms);
        loginMs.push(r.loginMs);
      } else if (samples.length < 5) samples.push(r.sample);
    }
  }),
);
const seconds = (performance.now() - tStart) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({
    ok: ms.length,
    total,
    seconds: +seconds.toFixed(3),
    // Every session, warm-up included: the proxy's CPU delta is divided by it, and the next
    // run of this address stream starts after it.
    sessionsAll: next,
    raw: { sessionMs: ms.map((x) => +x.toFixed(2)), loginMs: loginMs.map((x) => +x.toFixed(2)) },
    sessionMs: summary(ms),
    loginMs: summary(loginMs),
    samples,
    loadgenCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - tBegin)) * 100),
  })}\n`,
);
process.exit(0);
