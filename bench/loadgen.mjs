// Load generator for `npm run bench`: a separate process (so its CPU is never counted with
// the proxy's), raw net/tls sockets, no client library. One JSON spec in argv[2]; prints one
// JSON result line on stdout (the idle mode prints "ready" and waits for "close" on stdin).
// Modes: logins (closed loop, or open loop with `rate`), idle (hold N connections), transfer
// (IMAP FETCH / POP3 RETR of one big message), append (store that message, straight to Dovecot).
// `tls`: none | starttls | implicit, `maxVersion` (default TLSv1.3); `resume: true`: each client
// (a closed loop's slot, an open loop's source address) offers the TLS session it got last.
import net from 'node:net';
import tls from 'node:tls';
import { createInterface } from 'node:readline';
import { Conn, pct, summary } from './loadgen-conn.mjs';

const spec = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** TLS on `sock` (or a new connection), offering `slot`'s session and keeping the newest one
 *  the server hands out in it; resolves once the handshake is done. */
async function secureOn(opts, slot) {
  const secure = tls.connect({ ...opts, rejectUnauthorized: false, servername: 'localhost', ...(slot?.session ? { session: slot.session } : {}) });
  if (slot) secure.on('session', (sess) => (slot.session = sess));
  await new Promise((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return secure;
}

/** Connect, greet, optional STARTTLS/STLS (or implicit TLS): the session as a client sees it
 *  before login; `resumed`: the server took the session `slot` offered. */
async function open({ host, port, proto = 'imap', tls: tlsMode = 'none', source, maxVersion }, slot) {
  const [local, version] = [source ? { localAddress: source } : {}, maxVersion ? { maxVersion } : {}];
  const sock = tlsMode === 'implicit' ? await secureOn({ host, port, ...local, ...version }, slot) : net.connect({ host, port, ...local });
  sock.setNoDelay(true);
  let c = new Conn(sock);
  await c.connected();
  const greeting = await c.line();
  if (proto === 'imap' ? !greeting.startsWith('* OK') : !greeting.startsWith('+OK')) return { c, refused: greeting };
  if (tlsMode === 'starttls') {
    if (proto === 'imap') {
      c.write('s STARTTLS\r\n');
      const r = await c.tagged('s');
      if (!r.startsWith('s OK')) throw new Error(`STARTTLS refused: ${r}`);
    } else {
      c.write('STLS\r\n');
      const r = await c.line();
      if (!r.startsWith('+OK')) throw new Error(`STLS refused: ${r}`);
    }
    c.detach();
    c = new Conn(await secureOn({ socket: sock, ...version }, slot));
  }
  return { c, refused: null, resumed: c.sock.isSessionReused?.() ?? false };
}

/** Classify a login reply: ok, fail (wrong password), limited (temporary refusal), other. */
function classify(reply, proto) {
  if (proto === 'imap' ? /^\S+ OK/.test(reply) : reply.startsWith('+OK')) return 'ok';
  if (/UNAVAILABLE|SYS\/TEMP|try again/i.test(reply)) return 'limited';
  if (/AUTHENTICATIONFAILED|AUTH\]|Authentication failed|auth/i.test(reply)) return 'fail';
  return 'other';
}

async function login(c, proto, user, pass) {
  if (proto === 'imap') {
    c.write(`l LOGIN ${user} ${pass}\r\n`);
    return c.tagged('l');
  }
  c.write(`USER ${user}\r\n`);
  const u = await c.line();
  if (!u.startsWith('+OK')) return u;
  c.write(`PASS ${pass}\r\n`);
  return c.line();
}

async function logout(c, proto) {
  c.write(proto === 'imap' ? 'o LOGOUT\r\n' : 'QUIT\r\n');
  try {
    if (proto === 'imap') await c.tagged('o');
    else await c.line();
  } catch {
    /* the server may close right after BYE */
  }
  c.destroy();
}

/** One full session: connect, (STARTTLS), LOGIN, LOGOUT; `slot` holds the client's TLS session. */
async function session(s, i, slot) {
  const user = s.users[i % s.users.length];
  const source = s.sources?.length ? s.sources[i % s.sources.length] : undefined;
  const pass = s.wrongPassword ? `wrong-${i}-${Math.random().toString(36).slice(2)}` : user.pass;
  const t0 = performance.now();
  let c;
  try {
    const o = await open({ ...s, source }, s.resume ? slot : undefined);
    c = o.c;
    if (o.refused) {
      c.destroy();
      return { outcome: 'limited', ms: performance.now() - t0 };
    }
    const tl = performance.now();
    const reply = await login(c, s.proto ?? 'imap', user.user, pass);
    const loginMs = performance.now() - tl;
    const outcome = classify(reply, s.proto ?? 'imap');
    if (outcome === 'ok') await logout(c, s.proto ?? 'imap');
    else c.destroy();
    return { outcome, ms: performance.now() - t0, loginMs, reply, resumed: o.resumed };
  } catch (err) {
    c?.destroy();
    return { outcome: 'error', ms: performance.now() - t0, error: err.message };
  }
}

function tally() {
  return { counts: { ok: 0, fail: 0, limited: 0, other: 0, error: 0 }, resumed: 0, ms: [], okMs: [], loginMs: [], samples: [] };
}

function record(t, r) {
  t.counts[r.outcome]++;
  if (r.resumed) t.resumed++;
  t.ms.push(r.ms);
  if (r.outcome === 'ok') {
    t.okMs.push(r.ms);
    t.loginMs.push(r.loginMs);
  }
  if ((r.outcome === 'error' || r.outcome === 'other') && t.samples.length < 5) t.samples.push(r.error ?? r.reply);
}

function result(t, secs, s) {
  const total = Object.values(t.counts).reduce((a, b) => a + b, 0);
  return {
    ...(s.raw ? { raw: { sessionMs: t.okMs.map((x) => +x.toFixed(2)) } } : {}),
    ...t.counts,
    total,
    resumed: t.resumed,
    seconds: +secs.toFixed(3),
    perSec: +(t.counts.ok / secs).toFixed(1),
    attemptsPerSec: +(total / secs).toFixed(1),
    successRate: total ? +(t.counts.ok / total).toFixed(5) : null,
    sessionMs: summary(t.okMs),
    loginMs: summary(t.loginMs),
    allMs: summary(t.ms),
    samples: t.samples,
  };
}

/** Closed loop: `concurrency` clients, each starting a new session when its last one ends. */
async function closedLoop(s) {
  let i = 0;
  let measuring = false;
  const t = tally();
  const end = performance.now() + (s.warmupMs ?? 0) + s.durationMs;
  let tStart = 0;
  setTimeout(() => {
    measuring = true;
    tStart = performance.now();
  }, s.warmupMs ?? 0);
  const worker = async () => {
    const slot = {};
    while (performance.now() < end) {
      const r = await session(s, i++, slot);
      if (measuring) record(t, r);
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, worker));
  // Every session, warm-up included: what the proxy's CPU delta is divided by.
  return { ...result(t, (performance.now() - tStart) / 1000, s), sessionsAll: i };
}

/** Open loop: a new session every 1/rate s whatever the server does (a flood, or legitimate
 *  users arriving on their own schedule), at most maxInflight at once. */
async function openLoop(s) {
  const t = tally();
  const inflight = new Set();
  let skipped = 0;
  const interval = 1000 / s.rate;
  const slots = Array.from({ length: s.sources?.length || 1 }, () => ({}));
  const t0 = performance.now();
  for (let i = 0; ; i++) {
    const due = t0 + i * interval;
    if (due >= t0 + s.durationMs) break;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (inflight.size >= (s.maxInflight ?? 512)) {
      skipped++;
      continue;
    }
    const p = session(s, i, slots[i % slots.length]).then((r) => {
      record(t, r);
      inflight.delete(p);
    });
    inflight.add(p);
  }
  const secs = (performance.now() - t0) / 1000;
  await Promise.all(inflight);
  return { ...result(t, secs, s), skipped, rate: s.rate };
}

/** Hold `count` connections open (pre-auth, or logged in), report, wait for "close". */
async function idle(s) {
  const conns = [];
  let failed = 0;
  const errors = [];
  const t0 = performance.now();
  let next = 0;
  const one = async () => {
    for (;;) {
      const i = next++;
      if (i >= s.count) return;
      try {
        const source = s.sources?.length ? s.sources[i % s.sources.length] : undefined;
        const { c, refused } = await open({ ...s, source });
        if (refused) throw new Error(`refused: ${refused}`);
        if (s.login) {
          const u = s.users[i % s.users.length];
          const reply = await login(c, s.proto ?? 'imap', u.user, u.pass);
          if (classify(reply, s.proto ?? 'imap') !== 'ok') throw new Error(`login: ${reply}`);
        }
        c.detach(); // idle: no reader work, just the socket
        c.sock.on('error', () => undefined);
        conns.push(c.sock);
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err.message);
      }
    }
  };
  await Promise.all(Array.from({ length: s.openConcurrency ?? 100 }, one));
  const alive = conns.filter((x) => !x.destroyed).length;
  out({ ready: true, opened: conns.length, alive, failed, errors, ms: Math.round(performance.now() - t0) });
  const rl = createInterface({ input: process.stdin });
  for await (const l of rl) if (l.trim() === 'close') break;
  const stillAlive = conns.filter((x) => !x.destroyed).length;
  for (const x of conns) x.destroy();
  out({ closed: true, stillAlive });
}

/** Log in once, then fetch/retrieve message 1 `reps` times; bytes and speed per run (the
 *  MBps fields are MiB, 2^20 bytes, per second). */
async function transfer(s) {
  const proto = s.proto ?? 'imap';
  const { c } = await open(s);
  const u = s.users[0];
  const reply = await login(c, proto, u.user, u.pass);
  if (classify(reply, proto) !== 'ok') throw new Error(`login: ${reply}`);
  if (proto === 'imap') {
    c.write('x SELECT INBOX\r\n');
    await c.tagged('x');
  }
  const runs = [];
  for (let r = 0; r < s.reps; r++) {
    const t0 = performance.now();
    const bytes = proto === 'imap' ? await c.fetchBody(`f${r}`) : await c.retr();
    const ms = performance.now() - t0;
    runs.push({ bytes, ms: +ms.toFixed(1), MBps: +(bytes / 1048576 / (ms / 1000)).toFixed(1) });
  }
  await logout(c, proto);
  const mbps = runs.map((x) => x.MBps).sort((a, b) => a - b);
  return { runs, bytes: runs[0]?.bytes ?? 0, medianMBps: pct(mbps, 50), bestMBps: mbps.at(-1) };
}

/** A message of about `bytes` (76-character lines), APPENDed to INBOX over a plain login. */
async function append(s) {
  const line = 'x'.repeat(74) + '\r\n';
  const head = `From: bench@localhost\r\nTo: ${s.users[0].user}@localhost\r\nSubject: bench ${s.bytes}\r\nMessage-ID: <bench-${Date.now()}@localhost>\r\n\r\n`;
  const body = Buffer.from(line.repeat(Math.ceil((s.bytes - head.length) / line.length)));
  const msg = Buffer.concat([Buffer.from(head), body]);
  const { c } = await open(s);
  const reply = await login(c, 'imap', s.users[0].user, s.users[0].pass);
  if (classify(reply, 'imap') !== 'ok') throw new Error(`login: ${reply}`);
  c.write(`a APPEND INBOX {${msg.length}}\r\n`);
  const cont = await c.line();
  if (!cont.startsWith('+')) throw new Error(`APPEND: ${cont}`);
  c.sock.write(msg);
  c.write('\r\n');
  const r = await c.tagged('a');
  if (!r.startsWith('a OK')) throw new Error(`APPEND: ${r}`);
  await logout(c, 'imap');
  return { bytes: msg.length };
}

const modes = {
  logins: (s) => (s.rate ? openLoop(s) : closedLoop(s)),
  transfer,
  append,
};

if (spec.mode === 'idle') {
  await idle(spec);
  process.exit(0);
} else if (modes[spec.mode]) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await modes[spec.mode](spec);
  const cpu = process.cpuUsage(cpu0);
  // The generator's own CPU share: near 100% means it, not the server, set the pace.
  out({ ...r, loadgenCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - t0)) * 100) });
  process.exit(0);
} else {
  process.stderr.write(`loadgen: unknown mode ${spec.mode}\n`);
  process.exit(2);
}
