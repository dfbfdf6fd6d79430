// Faults around the login and the splice, for IMAP, POP3 and SMTP: a backend that refuses,
// resets or stalls during the login (scripted fake backends) gives the temporary failure
// within backends.<n>.loginTimeout and is never the user's failure; a backend that dies
// mid-splice (a real Dovecot stopped, and a fake that resets) closes the client promptly; a
// client that stops reading during a large FETCH leaves the proxy's memory bounded; slow-drip
// clients are cut at the absolute pre-auth deadline while real logins go on.
//
// Already covered elsewhere: a backend on a closed port for IMAP and SMTP
// (integration/imap.test.ts, smtp.test.ts), splice backpressure and half-close over loopback
// (integration/splice.test.ts), one IMAP trickle client (integration/imap-session.test.ts).
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { DEFAULT_USERS } from '../helpers/dovecot.js';
import { startFakeBackend, type FakeAction, type FakeBackend } from '../helpers/fake-backend.js';
import { greeted, killDovecotSessions, LOGIN_OK, loginBytes, loginOnce, memoryAfterGc, PROTOS, proxyConfig, TEMP_FAIL, type Proto } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import { freePort } from '../helpers/ports.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile({ sink: true, users: [...DEFAULT_USERS, { user: 'carol', pass: 'carol-pass' }, { user: 'dave', pass: 'dave-pass' }] });

// --- Backend faults during the login --------------------------------------------------------

type Fault = 'refused' | 'reset at connect' | 'stall before greeting' | 'reset after credentials' | 'stall after credentials';
const FAULTS: Fault[] = ['refused', 'reset at connect', 'stall before greeting', 'reset after credentials', 'stall after credentials'];

/** A FAKE backend per protocol that speaks just enough to receive the credentials. */
const FAKE: Record<Proto, { greeting: string; onLine: (l: string, fault: FakeAction) => FakeAction; credentials: RegExp }> = {
  imap: {
    greeting: '* OK [CAPABILITY IMAP4rev1 LITERAL+] fake\r\n',
    onLine: (l, fault) => (l.startsWith('mg1 LOGIN') ? fault : l.endsWith('LOGOUT') ? { close: '* BYE\r\nmg1 OK\r\n' } : undefined),
    credentials: /^mg1 LOGIN /,
  },
  pop3: {
    greeting: '+OK fake\r\n',
    onLine: (l, fault) => (l === 'CAPA' ? '+OK\r\nSASL PLAIN\r\n.\r\n' : l.startsWith('AUTH PLAIN') ? fault : l === 'QUIT' ? { close: '+OK\r\n' } : undefined),
    credentials: /^AUTH PLAIN /,
  },
  smtp: {
    greeting: '220 fake ESMTP\r\n',
    onLine: (l, fault) => (l.startsWith('EHLO') ? '250-fake\r\n250 AUTH PLAIN\r\n' : l.startsWith('AUTH PLAIN') ? fault : l === 'QUIT' ? { close: '221 bye\r\n' } : undefined),
    credentials: /^AUTH PLAIN /,
  },
};

const EXPECTED_ERROR: Record<Fault, RegExp> = {
  refused: /ECONNREFUSED/,
  'reset at connect': /ECONNRESET|closed the connection/,
  'stall before greeting': /within 500 ms/,
  'reset after credentials': /ECONNRESET|closed the connection/,
  'stall after credentials': /within 500 ms/,
};

describe('backend faults during the login', () => {
  // One user per protocol: the three run at once.
  const USER: Record<Proto, string> = { imap: 'alice', pop3: 'carol', smtp: 'dave' };
  it.concurrent.each(PROTOS)('%s: refused, reset or stalled: the temporary failure within loginTimeout, never counted', async (proto) => {
    const user = USER[proto];
    const fakes: FakeBackend[] = [];
    const backends: Record<string, unknown> = {};
    for (const fault of FAULTS) {
      const f = FAKE[proto];
      const port = fault === 'refused' ? await freePort() : undefined;
      if (port === undefined) {
        const fake = await startFakeBackend(
          fault === 'reset at connect' ? 'reset' : fault === 'stall before greeting' ? null : f.greeting,
          (l) => f.onLine(l, fault === 'reset after credentials' ? { reset: true } : { stall: true }),
        );
        fakes.push(fake);
        backends[fault] = fake.cfg({ loginTimeout: '500ms', connectTimeout: '500ms' });
      } else {
        backends[fault] = { host: '127.0.0.1', port, loginTimeout: '500ms', connectTimeout: '500ms' };
      }
    }
    const cfg = proxyConfig(rig.dovecot, {
      backends,
      limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m' }, { name: 'user-failures', key: 'user', count: 'failures', limit: 1, window: '10m' }] },
    });
    FAULTS.forEach((fault, i) => cfg.listeners.push({ name: `f${i}`, protocol: proto, listen: '127.0.0.1:0', tls: 'none', backend: fault, hostname: 'mx.test' }));
    const p = await rig.proxy(cfg);
    try {
      const ip = `127.0.47.${1 + PROTOS.indexOf(proto)}`;
      // One after the other (a failure reservation is exclusive under a limit of 1), from one
      // IP, for one user: none may count as a failure.
      const seen: string[] = [];
      for (let i = 0; i < FAULTS.length; i++) seen.push(await loginOnce(proto, p.port(`f${i}`), user, `${user}-pass`, { localAddress: ip }));
      FAULTS.forEach((fault, i) => {
        expect(seen[i], fault).toMatch(TEMP_FAIL[proto]);
        const line = p.log.lines.find((l) => l.event === 'auth.attempt' && l.listener === `f${i}`);
        expect(line, fault).toMatchObject({ outcome: 'backend-error', error: expect.stringMatching(EXPECTED_ERROR[fault]) });
      });
      // The "after credentials" fakes did receive them: the fault struck mid-login.
      for (const fake of fakes.slice(-2)) expect(fake.lines.some((l) => FAKE[proto].credentials.test(l))).toBe(true);
      // Failures limits of 1 on the IP and on the user, and still a real login goes through.
      expect(await loginOnce(proto, p.port(`${proto}-plain`), user, `${user}-pass`, { localAddress: ip })).toMatch(LOGIN_OK[proto]);
    } finally {
      await p.stop();
      await Promise.all(fakes.map((f) => f.stop()));
    }
  });
});

// --- The backend dies mid-splice --------------------------------------------------------------

describe('backend dies mid-splice', () => {
  it('Dovecot\'s session processes killed under logged-in IMAP, POP3 and SMTP clients: every client is closed, the splice says who ended it', async () => {
    const p = await rig.proxy(proxyConfig(rig.dovecot));
    try {
      const clients = await Promise.all(
        PROTOS.map(async (proto, i) => {
          const c = await greeted(proto, p.port(`${proto}-plain`), { localAddress: `127.0.47.${10 + i}` });
          c.write(loginBytes(proto, 'alice', 'alice-pass'));
          await c.waitFor(LOGIN_OK[proto]);
          return c;
        }),
      );
      expect(killDovecotSessions(rig.dovecot)).toBeGreaterThanOrEqual(3);
      for (const c of clients) await c.waitClosed();
      await until(() => p.log.lines.filter((l) => l.event === 'splice.end').length === 3, 'three splice.end lines');
      for (const l of p.log.lines.filter((x) => x.event === 'splice.end')) expect(l.endedBy).toMatch(/^backend/);
    } finally {
      await p.stop();
    }
  });

  it.each(PROTOS)('%s: a (fake) backend that resets the connection after login: the client is closed at once', async (proto) => {
    const ok = { imap: 'mg1 OK Logged in\r\n', pop3: '+OK Logged in.\r\n', smtp: '235 2.7.0 ok\r\n' }[proto];
    const fake = await startFakeBackend(FAKE[proto].greeting, (l) => (l === 'CRASH' ? { reset: true } : FAKE[proto].onLine(l, ok)));
    const cfg = proxyConfig(rig.dovecot, { backends: { fake: fake.cfg() } });
    cfg.listeners.push({ name: 'fake', protocol: proto, listen: '127.0.0.1:0', tls: 'none', backend: 'fake', hostname: 'mx.test' });
    const p = await rig.proxy(cfg);
    try {
      const c = await greeted(proto, p.port('fake'), { localAddress: `127.0.47.${20 + PROTOS.indexOf(proto)}` });
      c.write(loginBytes(proto, 'alice', 'pw'));
      await c.waitFor(LOGIN_OK[proto]);
      c.write('CRASH\r\n');
      await c.waitClosed();
      await until(() => p.log.lines.some((l) => l.event === 'splice.end'), 'splice.end');
      expect(p.log.lines.find((l) => l.event === 'splice.end')).toMatchObject({ endedBy: expect.stringMatching(/^backend/), bytesIn: 7 });
    } finally {
      await p.stop();
      await fake.stop();
    }
  });
});

// --- A client that stops reading ------------------------------------------------------------

describe('a client that stops reading during a large FETCH', () => {
  it('the proxy holds a bounded amount; the message arrives whole once the client reads again', async () => {
    const SIZE = 64 * 1024 * 1024;
    const line = `${'x'.repeat(1022)}\r\n`;
    const body = Buffer.from(`Subject: big\r\n\r\n${line.repeat(SIZE / line.length)}`);
    // Deliver it straight into Dovecot.
    const direct = await RawClient.connect(rig.dovecot.ports.imap);
    await direct.waitFor(/\r\n/);
    direct.write(Buffer.concat([Buffer.from(`a LOGIN bob bob-pass\r\nb APPEND INBOX {${body.length}+}\r\n`), body, Buffer.from('\r\nc LOGOUT\r\n')]));
    await direct.waitFor(/^c OK/m, 60_000);
    direct.close();

    const p = await rig.proxy(proxyConfig(rig.dovecot));
    try {
      const sock = await new Promise<net.Socket>((resolve) => {
        const s = net.connect({ port: p.port('imap-plain'), host: '127.0.0.1', localAddress: '127.0.47.30' }, () => resolve(s));
      });
      let text = '';
      const onData = (d: Buffer) => (text += d.toString('latin1'));
      sock.on('data', onData);
      sock.write('a LOGIN bob bob-pass\r\nb SELECT INBOX\r\n');
      await until(() => /^b OK/m.test(text), 'login and SELECT');
      const baseline = memoryAfterGc().arrayBuffers;
      sock.off('data', onData);
      sock.pause();
      sock.write('c FETCH 1 BODY.PEEK[]\r\n');
      // Wait until the proxy's memory stops changing: backpressure has stalled the pipe.
      let last = -1;
      let still = 0;
      let peak = 0;
      while (still < 6) {
        await new Promise((r) => setTimeout(r, 100));
        const now = memoryAfterGc().arrayBuffers;
        peak = Math.max(peak, now);
        still = Math.abs(now - last) < 256 * 1024 ? still + 1 : 0;
        last = now;
      }
      expect(peak - baseline).toBeLessThan(16 * 1024 * 1024);
      // Reading again: every byte of the message arrives.
      const chunks: Buffer[] = [];
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.resume();
      sock.write('d LOGOUT\r\n');
      await until(() => /\r\nd OK [^\r]*\r\n$/.test(Buffer.concat(chunks.slice(-2)).toString('latin1')), 'the whole FETCH', 60_000);
      const got = Buffer.concat(chunks);
      const head = /\* 1 FETCH \(BODY\[\] \{(\d+)\}\r\n/.exec(got.subarray(0, 200).toString('latin1'))!;
      expect(Number(head[1])).toBe(body.length);
      expect(got.subarray(head.index + head[0].length, head.index + head[0].length + body.length).equals(body)).toBe(true);
      sock.destroy();
    } finally {
      await p.stop();
    }
  }, 120_000);
});

// --- Slow-drip clients ----------------------------------------------------------------------

describe('slow-drip clients', () => {
  it('are cut at the absolute pre-auth deadline on every protocol and in the TLS handshake, while logins go on', async () => {
    // The legitimate client logs in back to back from one address; its finished sessions can
    // outlive its sockets for a moment, so the per-IP connection limit is not what is tested here.
    const p = await rig.proxy(proxyConfig(rig.dovecot, { timeouts: { preauth: '1500ms', tlsHandshake: '1s' }, limits: { connections: { perIp: 1000 } } }));
    try {
      const goodbye: Record<Proto, RegExp> = { imap: /\* BYE Disconnected for inactivity\.\r\n$/, pop3: /-ERR \[SYS\/TEMP\] Disconnected for inactivity\.\r\n$/, smtp: /421 4\.4\.2 mx\.test Timeout; closing connection\r\n$/ };
      const drip: Record<Proto, string> = { imap: 'a NOOP\r\nb', pop3: 'CAPA\r\nC', smtp: 'NOOP\r\nN' };
      const drips = await Promise.all(
        PROTOS.flatMap((proto, i) => [0, 1, 2, 3].map(async (k) => ({ proto, c: await greeted(proto, p.port(`${proto}-plain`), { localAddress: `127.0.47.${40 + i * 4 + k}` }) }))),
      );
      // Half-open TLS handshakes: a ClientHello that never finishes.
      const hellos = await Promise.all(PROTOS.map((proto, i) => RawClient.connect(p.port(`${proto}-tls`), { localAddress: `127.0.47.${60 + i}` })));
      let tick = 0;
      const timer = setInterval(() => {
        tick++;
        for (const { proto, c } of drips) if (!c.closed) c.write(drip[proto][tick % drip[proto].length]!);
        for (const h of hellos) if (!h.closed) h.write(Buffer.from([0x16]));
      }, 100);
      const logins: string[] = [];
      try {
        while (!drips.every((d) => d.c.closed) || !hellos.every((h) => h.closed)) {
          for (const proto of PROTOS) logins.push(await loginOnce(proto, p.port(`${proto}-plain`), 'alice', 'alice-pass', { localAddress: '127.0.47.70' }));
        }
      } finally {
        clearInterval(timer);
      }
      for (const { proto, c } of drips) expect(c.received).toMatch(goodbye[proto]);
      for (const h of hellos) expect(h.received).toBe('');
      expect(logins.length).toBeGreaterThanOrEqual(3);
      logins.forEach((l, i) => expect(l).toMatch(LOGIN_OK[PROTOS[i % 3]!]));
      expect(p.log.lines.filter((l) => l.event === 'tls.failed')).toHaveLength(3);
    } finally {
      await p.stop();
    }
  });
});
