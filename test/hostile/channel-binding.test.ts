// Hostile: channel-binding mechanisms through a TLS-terminating proxy (CVE-2026-33603). Scripted
// FAKE backends (not Dovecot: a stock Dovecot 2.3 offers no SCRAM-*-PLUS) advertise
// SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, GS2-KRB5-PLUS, GSS-SPNEGO and more in IMAP AUTH=, the
// POP3 CAPA SASL line and the SMTP EHLO AUTH keyword. None of them reaches a client of mailgate,
// for all three protocols, and a client asking for one is refused without the backend hearing
// of it. OAUTHBEARER, offered alike, does get through: the filter is an allow list, not a blind.
//
// Already covered elsewhere: every capability list a machine writes, before and after TLS
// (unit/imap-machine, pop3-machine, smtp-machine tests), offeredMechanisms (unit/sasl-oauth).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeBackend } from '../helpers/fake-backend.js';
import { greeted, type Proto } from '../helpers/hostile.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const CB = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'GS2-KRB5-PLUS', 'SCRAM-SHA-256', 'GSS-SPNEGO', 'GSSAPI', 'EXTERNAL'];
const OFFERED = ['PLAIN', ...CB, 'OAUTHBEARER'];
const FORBIDDEN = /PLUS|SCRAM|GSS|EXTERNAL/;

/** FAKE backends that answer mailgate's capability probe with every mechanism above. */
const FAKE: Record<Proto, { greeting: string; onLine: (l: string) => string | { close: string } | undefined }> = {
  imap: {
    greeting: `* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ${OFFERED.map((m) => `AUTH=${m}`).join(' ')}] fake\r\n`,
    onLine: (l) => (l.endsWith('LOGOUT') ? { close: '* BYE\r\nmg1 OK\r\n' } : undefined),
  },
  pop3: {
    greeting: '+OK fake\r\n',
    onLine: (l) => (l === 'CAPA' ? `+OK\r\nUSER\r\nSASL ${OFFERED.join(' ')}\r\n.\r\n` : l === 'QUIT' ? { close: '+OK\r\n' } : undefined),
  },
  smtp: {
    greeting: '220 fake ESMTP\r\n',
    onLine: (l) => (l.startsWith('EHLO') ? `250-fake\r\n250-PIPELINING\r\n250 AUTH ${OFFERED.join(' ')}\r\n` : l === 'QUIT' ? { close: '221 bye\r\n' } : undefined),
  },
};

const fakes = {} as Record<Proto, FakeBackend>;
let proxy: TestProxy;

beforeAll(async () => {
  for (const p of ['imap', 'pop3', 'smtp'] as const) fakes[p] = await startFakeBackend(FAKE[p].greeting, FAKE[p].onLine);
  proxy = await startTestProxy({
    listeners: (['imap', 'pop3', 'smtp'] as const).map((p) => ({ name: p, protocol: p, listen: '127.0.0.1:0', tls: 'none', backend: p, hostname: 'mx.test' })),
    backends: { imap: fakes.imap.cfg(), pop3: fakes.pop3.cfg(), smtp: fakes.smtp.cfg() },
    limits: { rules: [] },
  });
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all(Object.values(fakes).map((f) => f.stop()));
});

/** What each protocol's client asks: the mechanism lists, then each forbidden mechanism. */
const DIALOGUE: Record<Proto, { ask: string; done: RegExp; refusal: RegExp }> = {
  imap: {
    ask: `a CAPABILITY\r\n${CB.map((m, i) => `t${i} AUTHENTICATE ${m}\r\n`).join('')}z NOOP\r\n`,
    done: /^z OK /m,
    refusal: /^t\d NO \[CANNOT\] /gm,
  },
  pop3: { ask: `CAPA\r\nAUTH\r\n${CB.map((m) => `AUTH ${m}\r\n`).join('')}NOOP\r\n`, done: /-ERR Unknown command\.\r\n/, refusal: /^-ERR Unsupported authentication mechanism\.\r\n/gm },
  smtp: { ask: `EHLO c\r\n${CB.map((m) => `AUTH ${m}\r\n`).join('')}NOOP\r\n`, done: /^250 2\.0\.0 OK\r\n/m, refusal: /^504 5\.5\.4 /gm },
};

describe('a backend offering channel-binding mechanisms', () => {
  it.each(['imap', 'pop3', 'smtp'] as const)('%s: none reaches the client, each is refused, the backend never hears of it', async (p) => {
    const c = await greeted(p, proxy.port(p), { localAddress: '127.0.76.20' });
    c.write(DIALOGUE[p].ask);
    const text = await c.waitFor(DIALOGUE[p].done);
    c.close();
    expect(text).not.toMatch(FORBIDDEN);
    expect(text).toMatch(/OAUTHBEARER/);
    expect(text.match(DIALOGUE[p].refusal)).toHaveLength(CB.length);
    // The backend only ever saw mailgate's capability probe.
    expect(fakes[p].lines.filter((l) => FORBIDDEN.test(l) || /^(?:\S+ )?AUTH/i.test(l))).toEqual([]);
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt')).toEqual([]);
  });
});
