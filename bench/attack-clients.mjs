// IMAP login clients for the attack benchmark (bench/phase-attacks.ts), as a separate process so
// their TLS and socket work is never counted on mailgate's event loop. JSON commands on stdin, one
// JSON answer line per command on stdout; ends when stdin closes (the parent is gone).
//   {id, op: 'batch', target, attempts: [{source, user, pass}], concurrency, giveUpMs, spreadMs}
//     every attempt once, at most `concurrency` in flight, the i-th not before i/n of spreadMs
//     (a sustained attack, not one burst); answers with one result per attempt.
//   {id, op: 'trickle', target, logins: [{source, user, pass}], rate}  then  {id, op: 'stop'}
//     legitimate logins at `rate`/s (open loop) until stopped; answers with their latencies.
// A target is {port, tls: 'implicit' | 'starttls'}. Only loopback is ever dialled. This process
// only reports what a client sees; mailgate's own log says what reached the backend.
import net from 'node:net';
import tls from 'node:tls';
import { createInterface } from 'node:readline';
import { Conn } from './loadgen-conn.mjs';

const HOST = '127.0.0.1';
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sockets = new Set();

function track(sock) {
  sockets.add(sock);
  sock.on('error', () => undefined); // each caller handles the failure it sees; no stray throw
  sock.once('close', () => sockets.delete(sock));
  return sock;
}

async function secure(plain) {
  const s = track(tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' }));
  await new Promise((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  return s;
}

/** Connect from `source`, read the greeting, get to TLS. Returns the connection, or the
 *  greeting of a server that refused at connect (null connection). */
async function open(target, source) {
  if (target.tls === 'implicit') {
    const s = track(tls.connect({ host: HOST, port: target.port, localAddress: source, rejectUnauthorized: false, servername: 'localhost' }));
    const c = new Conn(s);
    await new Promise((resolve, reject) => {
      s.once('secureConnect', resolve);
      s.once('error', reject);
      s.once('close', () => reject(new Error('closed during TLS handshake')));
    });
    const greeting = await c.line();
    return greeting.startsWith('* OK') ? { c } : { c: null, refused: greeting, sock: s };
  }
  const sock = track(net.connect({ host: HOST, port: target.port, localAddress: source }));
  sock.setNoDelay(true);
  const c = new Conn(sock);
  await c.connected();
  const greeting = await c.line();
  if (!greeting.startsWith('* OK')) return { c: null, refused: greeting, sock };
  c.write('s STARTTLS\r\n');
  const r = await c.tagged('s');
  if (!r.startsWith('s OK')) return { c: null, refused: r, sock };
  c.detach();
  return { c: new Conn(await secure(sock)) };
}

const quote = (s) => `"${s.replace(/["\\]/g, (m) => `\\${m}`)}"`;

/** What the client heard: ok, fail (wrong password), limited (temporary refusal), other. */
function classify(reply) {
  if (/^l OK/.test(reply)) return 'ok';
  if (/UNAVAILABLE|try again/i.test(reply)) return 'limited';
  if (/^l NO/.test(reply)) return 'fail';
  return 'other';
}

/** One login: connect, TLS, LOGIN, LOGOUT on success. `loginSent` says whether mailgate saw a
 *  LOGIN (a refusal at connect never makes an auth.attempt line). An answer slower than
 *  giveUpMs is abandoned, as an attacker moving on would; mailgate still decides and logs it. */
async function attempt(target, a, giveUpMs) {
  const t0 = performance.now();
  const epoch = Date.now();
  let c = null;
  let loginSent = false;
  let timer;
  try {
    const o = await open(target, a.source);
    if (!o.c) {
      o.sock.destroy();
      return { outcome: 'refused', ms: performance.now() - t0, loginSent, epoch };
    }
    c = o.c;
    c.write(`l LOGIN ${quote(a.user)} ${quote(a.pass)}\r\n`);
    loginSent = true;
    const giveUp = new Promise((resolve) => (timer = setTimeout(() => resolve(null), giveUpMs)));
    const reply = await Promise.race([c.tagged('l'), giveUp]);
    const ms = performance.now() - t0;
    if (reply === null) return { outcome: 'timeout', ms, loginSent, epoch };
    const outcome = classify(reply);
    if (outcome === 'ok') {
      c.write('o LOGOUT\r\n');
      await Promise.race([c.tagged('o').catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    }
    return { outcome, ms, loginSent, epoch };
  } catch (err) {
    return { outcome: 'error', ms: performance.now() - t0, loginSent, error: err.message };
  } finally {
    clearTimeout(timer);
    c?.sock.destroy();
  }
}

async function batch(cmd) {
  const n = cmd.attempts.length;
  const results = new Array(n);
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const wait = t0 + ((cmd.spreadMs ?? 0) * i) / n - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      results[i] = await attempt(cmd.target, cmd.attempts[i], cmd.giveUpMs ?? 30_000);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(cmd.concurrency ?? 20, cmd.attempts.length)) }, worker));
  return { results: results.map((r) => ({ ...r, ms: +r.ms.toFixed(2) })) };
}

const trickles = new Map();

/** Open loop: a login every 1/rate s whatever mailgate does, cycling through `logins`. */
function trickle(cmd) {
  const state = { stopped: false, results: [], inflight: new Set() };
  trickles.set(cmd.id, state);
  const t0 = performance.now();
  state.done = (async () => {
    for (let i = 0; !state.stopped; i++) {
      const wait = t0 + (i * 1000) / cmd.rate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (state.stopped) break;
      if (state.inflight.size >= 200) continue;
      const at = performance.now() - t0;
      const p = attempt(cmd.target, cmd.logins[i % cmd.logins.length], cmd.giveUpMs ?? 30_000).then((r) => {
        state.results.push({ ...r, at });
        state.inflight.delete(p);
      });
      state.inflight.add(p);
    }
    await Promise.all(state.inflight);
    return { results: state.results.map((r) => ({ outcome: r.outcome, ms: +r.ms.toFixed(2), at: Math.round(r.at), epoch: r.epoch })) };
  })();
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (l) => {
  const cmd = JSON.parse(l);
  if (cmd.op === 'batch') {
    void batch(cmd).then((r) => out({ id: cmd.id, ...r }), (err) => out({ id: cmd.id, error: err.message }));
  } else if (cmd.op === 'trickle') {
    trickle(cmd);
    out({ id: cmd.id, started: true });
  } else if (cmd.op === 'stop') {
    const t = trickles.get(cmd.id);
    if (!t) return out({ id: cmd.id, error: 'no such trickle' });
    t.stopped = true;
    trickles.delete(cmd.id);
    void t.done.then((r) => out({ id: cmd.id, ...r }));
  }
});
lines.on('close', () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
