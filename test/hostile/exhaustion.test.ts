// Resource exhaustion before login, for IMAP, POP3 and SMTP: thousands of aborted SASL
// exchanges and STARTTLS-then-disconnect cycles (cut before, during and after the handshake)
// leave no file descriptors, sessions or memory behind; clients that pipeline cheap commands
// without ever reading the replies stop being read at a small bound of unread replies and are
// dropped instead of parking replies in the proxy (sixty of them: noread-flood.test.ts).
// Resource checks compare against a baseline with a small tolerance, never timings.
//
// Already covered elsewhere: a TLS handshake that never starts (integration/imap-session),
// slow-drip clients (faults.test.ts), one oversize line (parser-limits.test.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREAUTH_UNREAD_REPLY_BYTES } from '../../src/bounds.js';
import { b64 } from '../helpers/codec.js';
import { GREETING, memoryAfterGc, openFds, PROTOS, type Proto } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { devCert } from '../helpers/tls.js';

let dir: string;
let proxy: TestProxy;

beforeAll(async () => {
  dir = mkdtempSync(join(os.tmpdir(), 'mailgate-exhaustion-'));
  const cert = await devCert(dir);
  // No backend is ever reached here: nothing listens on port 1.
  proxy = await startTestProxy({
    listeners: PROTOS.flatMap((p) => [
      { name: `${p}-plain`, protocol: p, listen: '127.0.0.1:0', tls: 'none', backend: 'none', hostname: 'mx.test' },
      { name: `${p}-starttls`, protocol: p, listen: '127.0.0.1:0', tls: 'starttls', backend: 'none', hostname: 'mx.test' },
      { name: `${p}-tls`, protocol: p, listen: '127.0.0.1:0', tls: 'implicit', backend: 'none', hostname: 'mx.test' },
    ]),
    tls: { cert: cert.certPath, key: cert.keyPath },
    backends: { none: { host: '127.0.0.1', port: 1 } },
    // Deadlines far beyond any wait below: whatever ends here ends because the client left.
    timeouts: { preauth: '120s', tlsHandshake: '120s' },
  });
});
afterAll(async () => {
  await proxy?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sessions = () => proxy.listeners.reduce((n, l) => n + l.sessions.size, 0);

/** A bare client: connect, collect text, resolve waits on a pattern. */
async function open(port: number, ip: string): Promise<{ s: net.Socket; text: () => string; clear: () => void; wait: (re: RegExp) => Promise<void> }> {
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: ip }, () => resolve(c));
    c.once('error', reject);
  });
  s.on('error', () => undefined);
  let text = '';
  const waiters = new Set<() => void>();
  s.on('data', (d: Buffer) => {
    text += d.toString('latin1');
    waiters.forEach((w) => w());
  });
  const wait = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!re.test(text)) return;
        waiters.delete(check);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => reject(new Error(`no ${re} in ${JSON.stringify(text)}`)), 10_000);
      waiters.add(check);
      check();
    });
  return { s, text: () => text, clear: () => void (text = ''), wait };
}

const SASL_START: Record<Proto, [string, RegExp][]> = {
  imap: [['a AUTHENTICATE PLAIN\r\n', /^\+ /m], ['a AUTHENTICATE LOGIN\r\n', /^\+ /m]],
  pop3: [['AUTH PLAIN\r\n', /^\+ /m], [`AUTH LOGIN ${b64('alice')}\r\n`, /^\+ /m]],
  smtp: [['EHLO c\r\nAUTH PLAIN\r\n', /^334 /m], [`EHLO c\r\nAUTH LOGIN ${b64('alice')}\r\n`, /^334 /m]],
};
const STARTTLS: Record<Proto, [string, RegExp]> = {
  imap: ['s STARTTLS\r\n', /^s OK /m],
  pop3: ['STLS\r\n', /^\+OK Begin/m],
  smtp: ['EHLO c\r\nSTARTTLS\r\n', /^220 2/m],
};

/** One aborted cycle; `n` picks the protocol and how it is cut. */
async function cycle(n: number, ip: string): Promise<void> {
  const proto = PROTOS[n % 3]!;
  const kind = Math.floor(n / 3) % 6;
  if (kind === 5) {
    // A port scan of an implicit-TLS port: connect, maybe a byte of a ClientHello, gone.
    const c = await open(proxy.port(`${proto}-tls`), ip);
    if (n % 2) c.s.write(Buffer.from([0x16, 0x03]));
    if (n % 4 < 2) c.s.end();
    else c.s.destroy();
    return;
  }
  if (kind < 2) {
    // An aborted SASL exchange: the challenge is out, then the client vanishes (FIN or RST).
    const c = await open(proxy.port(`${proto}-plain`), ip);
    await c.wait(GREETING[proto]);
    c.clear();
    const [cmd, challenge] = SASL_START[proto][kind]!;
    c.s.write(cmd);
    await c.wait(challenge);
    if (n % 2) c.s.resetAndDestroy();
    else c.s.end();
    return;
  }
  // STARTTLS, then gone: before the handshake, halfway through it, or right after it.
  const c = await open(proxy.port(`${proto}-starttls`), ip);
  await c.wait(GREETING[proto]);
  c.clear();
  const [cmd, ok] = STARTTLS[proto];
  c.s.write(cmd);
  await c.wait(ok);
  if (kind === 2) return void c.s.destroy();
  c.s.removeAllListeners('data');
  const secure = tls.connect({ socket: c.s, rejectUnauthorized: false });
  secure.on('error', () => undefined);
  if (kind === 3) {
    secure.once('data', () => undefined);
    setImmediate(() => secure.destroy()); // the ClientHello is out, the handshake is not done
    return;
  }
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => resolve());
    secure.once('close', () => reject(new Error(`${proto}: TLS closed before the handshake finished`)));
  });
  secure.destroy();
}

async function run(total: number): Promise<void> {
  const workers = 20;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let n = w; n < total; n += workers) await cycle(n, `127.0.49.${1 + w}`);
    }),
  );
  await until(() => sessions() === 0, 'every session to end', 30_000);
}

describe('thousands of aborted exchanges', () => {
  it('2,400 aborted SASL exchanges and STARTTLS cycles leave no fds, sessions or memory behind', async () => {
    const forgetLog = () => {
      proxy.log.lines.length = 0; // the test's own log capture must not count as growth
      proxy.log.raw.length = 0;
    };
    await run(300); // warm-up: JIT, TLS contexts, pools
    forgetLog();
    const fds = openFds();
    const heap = memoryAfterGc().heapUsed;
    await run(2400);
    // Sockets of ended sessions close within the close grace; fds must come back to the baseline.
    await until(() => openFds() <= fds + 4, `open fds back near ${fds} (now ${openFds()})`, 15_000);
    expect(proxy.log.lines.filter((l) => (l.level as number) >= 50)).toEqual([]); // no error lines
    expect(proxy.log.lines.filter((l) => l.event === 'session.open')).toHaveLength(2400);
    const gauge = await proxy.metrics.connections.get();
    expect(gauge.values.reduce((sum, v) => sum + v.value, 0)).toBe(0);
    forgetLog();
    const grown = memoryAfterGc().heapUsed - heap;
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  }, 120_000);
});

describe('clients that never read their replies', () => {
  it('pipelined CAPABILITY / CAPA / EHLO floods: each stops being read at 8 KiB of unread replies and parks no more, or is dropped; readers are unaffected', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const flood: Record<Proto, string> = { imap: 'a CAPABILITY\r\n', pop3: 'CAPA\r\n', smtp: 'EHLO c\r\n' };
      const floods = await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const proto = PROTOS[i % 3]!;
          const c = await open(proxy.port(`${proto}-plain`), `127.0.50.${1 + i}`);
          c.s.pause(); // never reads
          const chunk = Buffer.from(flood[proto].repeat(Math.floor(65536 / flood[proto].length)));
          for (let k = 0; k < 64 && !c.s.destroyed; k++) c.s.write(chunk);
          return c;
        }),
      );
      // A well-behaved client pipelining a batch of the same commands (less than the bound of
      // replies: TCP never says what a client read, so a deeper batch counts as unread), and
      // reading, gets every answer.
      const reader = await open(proxy.port('pop3-plain'), '127.0.50.100');
      reader.s.write('CAPA\r\n'.repeat(50));
      await until(() => reader.text().split('\r\n.\r\n').length > 50, 'all 50 CAPA answers');
      reader.s.destroy();
      // Each flooder ends up dropped, or stalled (paused) with its queue within the bound. The
      // session's socket is private: read its queue the way the session itself does.
      const queue = (s: unknown) => (s as { socket: net.Socket }).socket;
      const flooders = () => proxy.listeners.flatMap((l) => [...l.sessions]).filter((s) => s.clientIp.startsWith('127.0.50.') && s.clientIp !== '127.0.50.100');
      await until(() => flooders().every((s) => queue(s).isPaused()), 'every flooder to be dropped or stalled', 20_000);
      // The bound, and at most one turn's replies past it.
      for (const s of flooders()) expect(queue(s).writableLength).toBeLessThanOrEqual(PREAUTH_UNREAD_REPLY_BYTES + 4 * 1024);
      expect(proxy.log.lines.filter((l) => l.reason === 'replies not read').length + flooders().length).toBe(floods.length);
      floods.forEach((c) => c.s.destroy());
      await until(() => flooders().length === 0, 'the flooders to go');
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  }, 60_000);
});

describe('clients that hang up during a TLS handshake', () => {
  it('free their session at once, not at the handshake deadline (STARTTLS and implicit TLS)', async () => {
    for (let n = 0; n < 36; n++) {
      const proto = PROTOS[n % 3]!;
      if (n % 2) {
        const c = await open(proxy.port(`${proto}-tls`), '127.0.50.200');
        if (n % 4 === 1) c.s.write(Buffer.from([0x16, 0x03, 0x01]));
        c.s.end();
      } else {
        const c = await open(proxy.port(`${proto}-starttls`), '127.0.50.201');
        await c.wait(GREETING[proto]);
        c.clear();
        c.s.write(STARTTLS[proto][0]);
        await c.wait(STARTTLS[proto][1]);
        c.s.end();
      }
    }
    // With a 120 s handshake deadline, only the hang-up itself can end these sessions.
    const mine = () => proxy.listeners.flatMap((l) => [...l.sessions]).filter((s) => s.clientIp.startsWith('127.0.50.20'));
    await until(() => mine().length === 0, 'sessions of clients that hung up to end', 10_000);
  });
});
