// `npm run soak [-- --minutes N]` (default 10; outside CI): a real Dovecot and mailgate in this
// process, well-behaved IMAP/POP3/SMTP clients and hostile ones side by side for a fixed time.
// Reports logins completed, hostile actions and errors by kind, RSS, heap and open fds at the
// start and end; exits 1 if any legitimate login was lost or resources did not come back near
// the baseline. Traffic stays on loopback (127.0.51.x legitimate, 127.0.52.x+ hostile).
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/logging/logger.js';
import { startProxy } from '../src/main.js';
import { startDovecot, type DovecotUser } from '../test/helpers/dovecot.js';
import { b64 } from '../test/helpers/codec.js';
import { ANY_LOGIN_END, greeted, LOGIN_OK, loginBytes, memoryAfterGc, PROTOS, proxyConfig, type Proto } from '../test/helpers/hostile.js';
import { RawClient } from '../test/helpers/raw-client.js';
import { startSmtpSink } from '../test/helpers/smtp-sink.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const MINUTES = arg('minutes', 10);
const LEGIT_WORKERS = arg('legit', 8);
const HOSTILE_WORKERS = arg('hostile', 10);
const PREAUTH = '5s';

const fds = () => readdirSync('/proc/self/fd').length;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

async function main(): Promise<number> {
  const users: DovecotUser[] = Array.from({ length: 8 }, (_, i) => ({ user: `user${i}`, pass: `pass-${i}-secret` }));
  const sink = await startSmtpSink();
  const dovecot = await startDovecot({
    users,
    relay: { host: sink.host, port: sink.port },
    extraConf: 'default_process_limit = 1000\ndefault_client_limit = 4000\n',
  });
  // Log lines are counted by event, not kept: the soak must not measure its own log.
  const events = new Map<string, number>();
  const errorsLogged: string[] = [];
  const logger = createLogger('info', new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        const l = JSON.parse(line) as { event?: string; level: number; msg: string };
        count(events, l.event ?? l.msg);
        if (l.level >= 50 && errorsLogged.length < 20) errorsLogged.push(line);
      }
      cb();
    },
  }));
  const cfg = proxyConfig(dovecot, {
    timeouts: { preauth: PREAUTH, tlsHandshake: '3s' },
    limits: {
      maxBadCommands: 10,
      rules: [
        { name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1_000_000, window: '1h' },
        { name: 'ip-failures', key: 'ip', count: 'failures', limit: 5, window: '10m', block: '10m' },
      ],
    },
  });
  const proxy = await startProxy(parseConfig(cfg), { log: logger });
  const port = (name: string) => proxy.addresses[name]!.port;
  const sessions = () => proxy.listeners.reduce((n, l) => n + l.sessions.size, 0);

  const legitOk = new Map<string, number>();
  const legitLost = new Map<string, number>();
  const hostile = new Map<string, number>();
  const hostileUnexpected = new Map<string, number>();
  let stop = false;

  // --- Well-behaved clients ------------------------------------------------------------------
  async function legit(w: number): Promise<void> {
    for (let n = 0; !stop; n++) {
      const proto = PROTOS[(w + n) % 3]!;
      const mode = (['plain', 'starttls', 'tls'] as const)[(n >> 1) % 3]!;
      const u = users[(w + n) % users.length]!;
      const kind = `${proto}-${mode}`;
      try {
        const c = await greeted(proto, port(`${proto}-${mode}`), { localAddress: `127.0.51.${1 + w}`, tls: mode === 'tls' });
        if (mode === 'starttls') {
          c.write({ imap: 's STARTTLS\r\n', pop3: 'STLS\r\n', smtp: 'EHLO c\r\nSTARTTLS\r\n' }[proto]);
          await c.waitFor({ imap: /^s OK /m, pop3: /^\+OK Begin/m, smtp: /^220 2/m }[proto]);
          await c.startTls();
        }
        c.clear();
        c.write(loginBytes(proto, u.user, u.pass));
        const text = await c.waitFor(ANY_LOGIN_END[proto]);
        if (!LOGIN_OK[proto].test(text)) throw new Error(`login answered ${JSON.stringify(text.slice(-80))}`);
        c.clear();
        c.write({ imap: 'b SELECT INBOX\r\nc LOGOUT\r\n', pop3: 'STAT\r\nQUIT\r\n', smtp: 'RSET\r\nQUIT\r\n' }[proto]);
        await c.waitFor({ imap: /^c OK /m, pop3: /^\+OK [^\r]*\r\n\+OK /m, smtp: /^221 /m }[proto]);
        c.close();
        count(legitOk, kind);
      } catch (err) {
        count(legitLost, `${kind}: ${(err as Error).message.slice(0, 60)}`);
      }
    }
  }

  // --- Hostile clients -----------------------------------------------------------------------
  type Action = (proto: Proto, ip: string) => Promise<boolean>;
  const plain = (proto: Proto) => port(`${proto}-plain`);
  const ACTIONS: Record<string, Action> = {
    // Guessing passwords: answered as failures, then refused as limited; never a success.
    async 'wrong-password'(proto, ip) {
      const text = await greeted(proto, plain(proto), { localAddress: ip }).then(async (c) => {
        c.write(loginBytes(proto, 'user1', `guess-${Math.random()}`));
        const t = await c.waitFor(ANY_LOGIN_END[proto]);
        c.close();
        return t;
      });
      return !LOGIN_OK[proto].test(text);
    },
    async garbage(proto, ip) {
      const c = await greeted(proto, plain(proto), { localAddress: ip });
      c.write(Buffer.from(Array.from({ length: 2000 }, () => Math.floor(Math.random() * 256))));
      c.write('\r\n'.repeat(12) + 'x\r\n'.repeat(12));
      await c.waitClosed();
      return true;
    },
    async 'oversize-line'(proto, ip) {
      const c = await greeted(proto, plain(proto), { localAddress: ip });
      c.write('A'.repeat(64 * 1024));
      await c.waitClosed();
      return true;
    },
    async 'aborted-sasl'(proto, ip) {
      const c = await greeted(proto, plain(proto), { localAddress: ip });
      c.write({ imap: 'a AUTHENTICATE LOGIN\r\n', pop3: 'AUTH LOGIN\r\n', smtp: 'EHLO c\r\nAUTH LOGIN\r\n' }[proto]);
      await c.waitFor({ imap: /^\+ /m, pop3: /^\+ /m, smtp: /^334 /m }[proto]);
      c.write(`${b64('user1')}\r\n`);
      await c.waitFor({ imap: /^\+ [^\r]*\r\n\+ /m, pop3: /^\+ [^\r]*\r\n\+ /m, smtp: /^334 [^\r]*\r\n334 /m }[proto]);
      c.socket.resetAndDestroy();
      return true;
    },
    async 'starttls-injection'(proto, ip) {
      const c = await greeted(proto, port(`${proto}-starttls`), { localAddress: ip });
      c.write({ imap: 's STARTTLS\r\nx LOGIN user1 pass-1-secret\r\n', pop3: 'STLS\r\nUSER user1\r\nPASS pass-1-secret\r\n', smtp: `EHLO c\r\nSTARTTLS\r\nAUTH PLAIN ${b64('\0user1\0pass-1-secret')}\r\n` }[proto]);
      await c.waitFor({ imap: /^s OK /m, pop3: /^\+OK Begin/m, smtp: /^220 2/m }[proto]);
      await c.startTls();
      c.write({ imap: 'y NOOP\r\n', pop3: 'CAPA\r\n', smtp: 'NOOP\r\n' }[proto]);
      const t = await c.waitFor({ imap: /^y OK /m, pop3: /^\.\r\n/m, smtp: /^250 /m }[proto]);
      c.close();
      return !/^x OK|Logged in|^235 /m.test(t);
    },
    async 'starttls-hangup'(proto, ip) {
      const c = await greeted(proto, port(`${proto}-starttls`), { localAddress: ip });
      c.write({ imap: 's STARTTLS\r\n', pop3: 'STLS\r\n', smtp: 'EHLO c\r\nSTARTTLS\r\n' }[proto]);
      await c.waitFor({ imap: /^s OK /m, pop3: /^\+OK Begin/m, smtp: /^220 2/m }[proto]);
      const s = tls.connect({ socket: c.socket, rejectUnauthorized: false });
      s.on('error', () => undefined);
      setImmediate(() => s.destroy());
      return true;
    },
    async 'slow-drip'(proto, ip) {
      const c = await greeted(proto, plain(proto), { localAddress: ip });
      const timer = setInterval(() => !c.closed && c.write('N'), 500);
      try {
        const t = await c.waitClosed(15_000);
        return /inactivity|Timeout/.test(t);
      } finally {
        clearInterval(timer);
      }
    },
    async 'invalid-user'(proto, ip) {
      const c = await greeted(proto, plain(proto), { localAddress: ip });
      c.write(loginBytes(proto, 'user1\0root\r\nINJECT', 'x'));
      const t = await c.waitFor(ANY_LOGIN_END[proto]);
      c.close();
      return !LOGIN_OK[proto].test(t);
    },
    async 'spoofed-identity'(proto, ip) {
      const c = await greeted(proto, plain(proto), { localAddress: ip });
      c.write({ imap: 'PROXY TCP4 6.6.6.6 1.1.1.1 1 2\r\na ID ("x-originating-ip" "6.6.6.6")\r\n', pop3: 'PROXY TCP4 6.6.6.6 1.1.1.1 1 2\r\nXCLIENT ADDR=6.6.6.6\r\n', smtp: 'XCLIENT ADDR=6.6.6.6\r\nXFORWARD ADDR=6.6.6.6\r\n' }[proto]);
      await c.waitFor({ imap: /^a OK /m, pop3: /^-ERR [^\r]*\r\n-ERR /m, smtp: /^500 [^\r]*\r\n500 /m }[proto]);
      c.close();
      return true;
    },
    async 'unread-flood'(proto, ip) {
      const c = await greeted(proto, plain(proto), { localAddress: ip });
      c.socket.pause();
      const line = { imap: 'a CAPABILITY\r\n', pop3: 'CAPA\r\n', smtp: 'EHLO c\r\n' }[proto];
      for (let i = 0; i < 16; i++) c.socket.write(line.repeat(Math.floor(65536 / line.length)));
      await new Promise((r) => setTimeout(r, 1000));
      c.close();
      return true;
    },
  };
  const kinds = Object.keys(ACTIONS);

  async function attacker(w: number): Promise<void> {
    for (let n = 0; !stop; n++) {
      const kind = kinds[(w + n) % kinds.length]!;
      const proto = PROTOS[(w * 7 + n) % 3]!;
      // A fresh address per round of actions, so limits on one never reach the legit range.
      const ip = `127.0.${52 + (w % 6)}.${1 + ((w * 31 + n) % 250)}`;
      try {
        if (await ACTIONS[kind]!(proto, ip)) count(hostile, kind);
        else count(hostileUnexpected, `${kind}/${proto}`);
      } catch (err) {
        // A closed connection or a refused one is the proxy defending itself: count it as such.
        count(hostile, `${kind} (cut: ${(err as Error).message.slice(0, 40)})`);
      }
    }
  }

  // --- Run -----------------------------------------------------------------------------------
  const samples: { t: number; rss: number; heap: number; fds: number; sessions: number }[] = [];
  const sample = (t: number) => {
    const m = process.memoryUsage();
    samples.push({ t, rss: m.rss, heap: m.heapUsed, fds: fds(), sessions: sessions() });
  };
  const started = Date.now();
  const runners: Promise<void>[] = [];
  for (let w = 0; w < LEGIT_WORKERS; w++) runners.push(legit(w));
  for (let w = 0; w < HOSTILE_WORKERS; w++) runners.push(attacker(w));
  // Baseline after a warm-up (JIT, TLS, Dovecot processes), while the mix is running.
  await new Promise((r) => setTimeout(r, Math.min(20_000, MINUTES * 60_000 * 0.1)));
  const base = { ...memoryAfterGc(), fds: fds() };
  const timer = setInterval(() => sample(Math.round((Date.now() - started) / 1000)), 10_000);
  await new Promise((r) => setTimeout(r, MINUTES * 60_000 - (Date.now() - started)));
  stop = true;
  clearInterval(timer);
  await Promise.all(runners);
  // Let every pre-auth session end (the deadline is 5 s) and closing sockets go.
  const drainUntil = Date.now() + 30_000;
  while (sessions() > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 3000));
  const end = { ...memoryAfterGc(), fds: fds(), sessions: sessions() };

  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const table = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `    ${String(v).padStart(7)}  ${k}`).join('\n') || '    (none)';
  const peak = samples.reduce((p, s) => ({ rss: Math.max(p.rss, s.rss), fds: Math.max(p.fds, s.fds), sessions: Math.max(p.sessions, s.sessions) }), { rss: 0, fds: 0, sessions: 0 });
  const fdOk = end.fds <= base.fds + 10;
  const heapOk = end.heapUsed <= base.heapUsed + 32 * 1024 * 1024;
  const rssOk = end.rss <= Math.max(base.rss * 2, base.rss + 200 * 1024 * 1024);
  const lost = total(legitLost);
  console.log(`mailgate soak: ${MINUTES} min, ${LEGIT_WORKERS} legitimate and ${HOSTILE_WORKERS} hostile clients at a time
  legitimate logins completed: ${total(legitOk)}
${table(legitOk)}
  legitimate logins lost: ${lost}
${table(legitLost)}
  hostile actions handled as designed: ${total(hostile)}
${table(hostile)}
  hostile actions with an unexpected answer: ${total(hostileUnexpected)}
${table(hostileUnexpected)}
  proxy log events:
${table(events)}
  error log lines: ${errorsLogged.length}${errorsLogged.length ? `\n    ${errorsLogged.join('\n    ')}` : ''}
  resources (baseline after warm-up -> end after drain, heap after GC; peak during run):
    rss       ${mb(base.rss)} -> ${mb(end.rss)} (peak ${mb(peak.rss)}) ${rssOk ? 'ok' : 'NOT BACK NEAR BASELINE'}
    heap      ${mb(base.heapUsed)} -> ${mb(end.heapUsed)} ${heapOk ? 'ok' : 'NOT BACK NEAR BASELINE'}
    open fds  ${base.fds} -> ${end.fds} (peak ${peak.fds}) ${fdOk ? 'ok' : 'NOT BACK NEAR BASELINE'}
    sessions  peak ${peak.sessions}, after drain ${end.sessions}`);
  await proxy.stop();
  await dovecot.stop();
  await sink.stop();
  const pass = lost === 0 && total(hostileUnexpected) === 0 && errorsLogged.length === 0 && fdOk && heapOk && rssOk && end.sessions === 0;
  console.log(pass ? 'PASS' : 'FAIL');
  return pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
