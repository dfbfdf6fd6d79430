// Hostile: STARTTLS both ways, for IMAP, POP3 and SMTP. Client side: plaintext sent after
// the STARTTLS OK but before the handshake is never parsed. Backend side (mailgate is the
// client there): a scripted fake backend that injects bytes after its STARTTLS OK, offers no
// or a look-alike STARTTLS, refuses it, greets with PREAUTH, or cannot be verified: the login
// gets the temporary failure, no credentials leave mailgate, and no failure is counted.
//
// Already covered elsewhere (not repeated here):
// - plaintext pipelined in the same packet as STARTTLS/STLS is discarded and counted:
//   integration/imap.test.ts, pop3.test.ts, smtp.test.ts ("plaintext pipelined after ...");
//   unit/*-machine.test.ts (STARTTLS sections: discarded counts, half-sent commands);
// - STARTTLS twice, inside TLS, on implicit or tls-none listeners: the same files;
// - TLS required: LOGINDISABLED / no USER, SASL / no AUTH before TLS, login refused unlogged;
// - after the handshake everything is forgotten (EHLO, USER, SASL): unit machine tests;
// - a POP3 backend injecting after STLS, at the replay level: integration/pop3.test.ts.
import { describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { type FakeAction, startFakeBackend } from '../helpers/fake-backend.js';
import { AUTH_FAIL, greeted, LOGIN_OK, loginOnce, type Proto, proxyConfig, TEMP_FAIL } from '../helpers/hostile.js';
import { dovecotWithProxy } from '../helpers/rig.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const rig = dovecotWithProxy();

describe('client STARTTLS: plaintext after the OK, before the handshake', () => {
  const cases: [Proto, string, RegExp, string][] = [
    ['imap', 'a STARTTLS\r\n', /^a OK /m, 'b LOGIN alice alice-pass\r\nc CAPABILITY\r\n'],
    ['pop3', 'STLS\r\n', /^\+OK Begin/m, 'USER alice\r\nPASS alice-pass\r\nCAPA\r\n'],
    ['smtp', 'EHLO c\r\nSTARTTLS\r\n', /^220 2\.0\.0/m, `EHLO evil\r\nAUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`],
  ];
  it.each(cases)('%s: is fed to the TLS layer as garbage, never parsed: no reply, no login, connection closed', async (proto, starttls, ok, injected) => {
    const ip = `127.0.40.${10 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    const c = await greeted(proto, rig.proxy.port(`${proto}-starttls`), { localAddress: ip });
    c.write(starttls);
    await c.waitFor(ok);
    c.clear();
    c.write(injected);
    expect(await c.waitClosed()).toBe('');
    const mine = rig.proxy.log.lines.filter((l) => l.ip === ip);
    expect(mine.filter((l) => l.event === 'auth.attempt')).toEqual([]);
    expect(mine.some((l) => l.event === 'tls.failed')).toBe(true);
  });
});

/** Scripted fake backends, per protocol, that misbehave around STARTTLS. `creds` matches a
 *  line that would carry credentials: the fake must never receive one. */
interface Scenario {
  name: string;
  greeting: string;
  onLine: (line: string) => FakeAction;
  error: RegExp;
}
const IMAP_OK_GREETING = '* OK [CAPABILITY IMAP4rev1 STARTTLS LITERAL+] fake ready\r\n';
const SCENARIOS: Record<Proto, { creds: RegExp; list: Scenario[] }> = {
  imap: {
    creds: /LOGIN|AUTHENTICATE|alice/i,
    list: [
      {
        name: 'injects a tagged OK after its STARTTLS OK',
        greeting: IMAP_OK_GREETING,
        onLine: (l) => (l === 'mg1 STARTTLS' ? 'mg1 OK Begin TLS negotiation now.\r\nmg1 OK [CAPABILITY IMAP4rev1] Logged in\r\n' : undefined),
        error: /after its STARTTLS reply/,
      },
      { name: 'offers no STARTTLS', greeting: '* OK [CAPABILITY IMAP4rev1 LITERAL+] fake\r\n', onLine: () => undefined, error: /does not offer STARTTLS/ },
      { name: 'offers only a look-alike STARTTLSX', greeting: '* OK [CAPABILITY IMAP4rev1 STARTTLSX LITERAL+] fake\r\n', onLine: () => undefined, error: /does not offer STARTTLS/ },
      { name: 'refuses STARTTLS', greeting: IMAP_OK_GREETING, onLine: (l) => (l === 'mg1 STARTTLS' ? 'mg1 NO not today\r\n' : undefined), error: /refused STARTTLS/ },
      { name: 'greets with PREAUTH', greeting: '* PREAUTH [CAPABILITY IMAP4rev1] logged in as root\r\n', onLine: () => undefined, error: /unexpected greeting/ },
    ],
  },
  pop3: {
    creds: /^(USER|PASS|AUTH)/,
    list: [
      { name: 'injects +OK after its STLS +OK', greeting: '+OK fake\r\n', onLine: (l) => (l === 'STLS' ? '+OK Begin TLS\r\n+OK Logged in.\r\n' : undefined), error: /after its STARTTLS reply/ },
      { name: 'refuses STLS', greeting: '+OK fake\r\n', onLine: (l) => (l === 'STLS' ? '-ERR no TLS here\r\n' : undefined), error: /refused STLS/ },
    ],
  },
  smtp: {
    creds: /^AUTH/,
    list: [
      {
        name: 'injects 235 after its STARTTLS 220',
        greeting: '220 fake ESMTP\r\n',
        onLine: (l) => (l.startsWith('EHLO') ? '250-fake\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n' : l === 'STARTTLS' ? '220 2.0.0 go ahead\r\n235 2.7.0 Authentication successful\r\n' : undefined),
        error: /after its STARTTLS reply/,
      },
      { name: 'offers no STARTTLS', greeting: '220 fake ESMTP\r\n', onLine: (l) => (l.startsWith('EHLO') ? '250-fake\r\n250 AUTH PLAIN\r\n' : undefined), error: /does not offer STARTTLS/ },
      { name: 'offers only a look-alike STARTTLSX', greeting: '220 fake ESMTP\r\n', onLine: (l) => (l.startsWith('EHLO') ? '250-fake\r\n250-STARTTLSX\r\n250 AUTH PLAIN\r\n' : undefined), error: /does not offer STARTTLS/ },
      {
        name: 'refuses STARTTLS',
        greeting: '220 fake ESMTP\r\n',
        onLine: (l) => (l.startsWith('EHLO') ? '250-fake\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n' : l === 'STARTTLS' ? '454 4.7.0 TLS not available\r\n' : undefined),
        error: /answered 454 to STARTTLS/,
      },
    ],
  },
};

describe('backend STARTTLS (mailgate as the client)', () => {
  for (const [proto, { creds, list }] of Object.entries(SCENARIOS) as [Proto, (typeof SCENARIOS)[Proto]][]) {
    list.forEach((s, i) => {
      it(`${proto}: a fake backend that ${s.name}: temporary failure, no credentials sent, no failure counted`, async () => {
        const fake = await startFakeBackend(s.greeting, s.onLine);
        const cfg = proxyConfig(rig.dovecot, {
          backends: { fake: fake.cfg({ tls: 'starttls', tlsVerify: false, loginTimeout: '2s', connectTimeout: '2s' }) },
          limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m' }] },
        });
        cfg.listeners.push({ name: 'fake', protocol: proto, listen: '127.0.0.1:0', tls: 'none', backend: 'fake', hostname: 'mx.test' });
        const p = await startTestProxy(cfg);
        try {
          const ip = `127.0.40.${30 + i * 3 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
          const seen = await loginOnce(proto, p.port('fake'), 'alice', 'alice-pass', { localAddress: ip });
          expect(seen).toMatch(TEMP_FAIL[proto]);
          expect(seen).not.toMatch(LOGIN_OK[proto]);
          expect(fake.lines.filter((l) => creds.test(l))).toEqual([]);
          const attempt = p.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === ip);
          expect(attempt).toMatchObject({ outcome: 'backend-error', error: expect.stringMatching(s.error) });
          // The same IP under a failures limit of 1 still reaches the real backend: not counted.
          expect(await loginOnce(proto, p.port(`${proto}-plain`), 'alice', 'alice-pass', { localAddress: ip })).toMatch(LOGIN_OK[proto]);
        } finally {
          await p.stop();
          await fake.stop();
        }
      });
    });
  }

  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s: a real backend whose certificate cannot be verified: temporary failure, never plaintext', async (proto) => {
    const port = { imap: rig.dovecot.ports.imap, pop3: rig.dovecot.ports.pop3, smtp: rig.dovecot.ports.submission }[proto];
    const cfg = proxyConfig(rig.dovecot, { backends: { unverified: { host: '127.0.0.1', port, tls: 'starttls', servername: 'localhost', loginTimeout: '5s' } } });
    cfg.listeners.push({ name: 'unverified', protocol: proto, listen: '127.0.0.1:0', tls: 'none', backend: 'unverified', hostname: 'mx.test' });
    const p = await startTestProxy(cfg);
    try {
      const ip = `127.0.40.${60 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
      const seen = await loginOnce(proto, p.port('unverified'), 'bob', 'bob-pass', { localAddress: ip });
      expect(seen).toMatch(TEMP_FAIL[proto]);
      expect(seen).not.toMatch(AUTH_FAIL[proto]);
      expect(p.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === ip)).toMatchObject({ outcome: 'backend-error', error: expect.stringMatching(/certificate/i) });
    } finally {
      await p.stop();
    }
  });
});
