// Clients of the no-read flood phase (bench/phase-noread.ts), each mode its own process so that
// neither's CPU is counted with the other's, and the flood never delays the probe's own loop.
// One JSON spec in argv[2]; one JSON result line on stdout.
//   flood: `count` raw sockets from `sources`, each writing `payload` as fast as the socket takes
//     it and never reading; a connection the server ends is opened again (an attacker comes
//     back). Stops after durationMs, or at "stop" or EOF on stdin, destroying every socket.
//   probe: legitimate logins at `rate` a second from `sources`: connect, greeting, LOGIN, the
//     tagged answer, timed; then the socket is destroyed.
import net from 'node:net';
import { Conn, summary } from './loadgen-conn.mjs';

const spec = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function flood(s) {
  const chunk = Buffer.from(s.payload.repeat(Math.ceil(65536 / s.payload.length)));
  const socks = new Set();
  const stats = { opened: 0, endedByServer: 0, bytesWritten: 0 };
  let stopping = false;
  const open = (i) => {
    if (stopping) return;
    const sock = net.connect({ host: s.host, port: s.port, localAddress: s.sources[i % s.sources.length] });
    stats.opened++;
    socks.add(sock);
    sock.pause(); // never reads: every reply stays in the kernel's buffers
    sock.on('error', () => undefined);
    const pump = () => {
      while (!stopping && !sock.destroyed && sock.write(chunk));
    };
    sock.on('connect', pump).on('drain', pump);
    sock.on('close', () => {
      socks.delete(sock);
      stats.bytesWritten += sock.bytesWritten;
      if (stopping) return;
      stats.endedByServer++;
      setTimeout(() => open(i), s.reconnectMs ?? 20);
    });
  };
  return new Promise((resolve) => {
    const stop = () => {
      if (stopping) return;
      stopping = true;
      for (const sock of socks) {
        stats.bytesWritten += sock.bytesWritten;
        sock.destroy();
      }
      resolve(stats);
    };
    setTimeout(stop, s.durationMs);
    process.stdin.on('data', (d) => String(d).includes('stop') && stop());
    process.stdin.on('end', stop);
    for (let i = 0; i < s.count; i++) open(i);
  });
}

/** One legitimate login, connect to the tagged answer. */
async function login(s, i) {
  const user = s.users[i % s.users.length];
  const t0 = performance.now();
  const sock = net.connect({ host: s.host, port: s.port, localAddress: s.sources[i % s.sources.length] });
  sock.setNoDelay(true);
  sock.on('error', () => undefined);
  const c = new Conn(sock);
  const timer = setTimeout(() => c.fail(new Error(`no answer within ${s.timeoutMs} ms`)), s.timeoutMs);
  try {
    await c.connected();
    const greeting = await c.line();
    if (!greeting.startsWith('* OK')) throw new Error(`greeting: ${greeting}`);
    c.write(`l LOGIN ${user.user} ${user.pass}\r\n`);
    const reply = await c.tagged('l');
    return { ok: reply.startsWith('l OK'), ms: performance.now() - t0, reply };
  } catch (err) {
    return { ok: false, ms: performance.now() - t0, reply: err.message };
  } finally {
    clearTimeout(timer);
    c.destroy();
  }
}

/** Open loop: a login every 1/rate s whatever the server does, as users arrive. */
async function probe(s) {
  const all = [];
  const okMs = [];
  const samples = [];
  const inflight = new Set();
  const t0 = performance.now();
  for (let i = 0; ; i++) {
    const due = t0 + (i * 1000) / s.rate;
    if (due >= t0 + s.durationMs) break;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const p = login(s, i).then((r) => {
      all.push(r.ms);
      if (r.ok) okMs.push(r.ms);
      else if (samples.length < 5) samples.push(r.reply);
      inflight.delete(p);
    });
    inflight.add(p);
  }
  await Promise.all(inflight);
  // Failures count at the time they took: a login that never came back is not left out.
  return { attempts: all.length, ok: okMs.length, loginMs: summary(all), okMs: summary(okMs), samples };
}

const modes = { flood, probe };
if (!modes[spec.mode]) {
  process.stderr.write(`noread-clients: unknown mode ${spec.mode}\n`);
  process.exit(2);
}
out(await modes[spec.mode](spec));
process.exit(0);
