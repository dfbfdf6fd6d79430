// Client identity out, against a real Dovecot: its own log shows each client's address (rip=)
// for IMAP, POP3 and SMTP logins passed on with ID/XCLIENT or a PROXY header; identity the
// client supplies is never believed; what the proxy offers before login matches Dovecot.
// PROXY headers in, from balancers: proxy-protocol-in.test.ts.
import { describe, expect, it } from 'vitest';
import { esc, GREETING, identityRig, LOGGED_IN, login, loginLine, PROTOCOLS } from '../helpers/identity.js';
import { RawClient } from '../helpers/raw-client.js';

const id = identityRig();
const { connect, dovecotLog } = id;

describe('client identity out: Dovecot logs the client, not mailgate', () => {
  /** The listeners' ways out: forwardClientInfo true and auto (the default: ID / XCLIENT,
   *  which this Dovecot offers mailgate), a PROXY v1 and v2 header. */
  const WAYS = { fwd: 'forwardClientInfo: true', auto: 'forwardClientInfo: auto', v1: 'a PROXY v1 header', v2: 'a PROXY v2 header' } as const;
  it.each(PROTOCOLS.flatMap((p, i) => (Object.keys(WAYS) as (keyof typeof WAYS)[]).map((way, j) => [p, WAYS[way], way, `127.0.64.${1 + i * 4 + j}`] as const)))(
    '%s with %s',
    async (p, _what, way, ip) => {
      const c = await connect(`${p}-${way}`, ip);
      await c.waitFor(GREETING[p]);
      expect(await login(c, p)).toMatch(LOGGED_IN[p]);
      c.close();
      const log = await dovecotLog(loginLine(p, ip));
      if (way === 'v1' || way === 'v2') return;
      // The session id mailgate logged is the one Dovecot logs (ID x-session-id, XCLIENT SESSION).
      const attempt = id.proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === ip);
      expect(attempt).toMatchObject({ outcome: 'ok', listener: `${p}-${way}` });
      if (p !== 'pop3') expect(log).toMatch(new RegExp(`rip=${esc(ip)},[^\\n]*session=<${attempt!.session as string}>`));
    },
  );

  it('a PROXY header to an implicit-TLS backend goes before the handshake', async () => {
    const c = await connect('imap-v2-tls', '127.0.60.16');
    await c.waitFor(GREETING.imap);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    expect(await dovecotLog(loginLine('imap', '127.0.60.16'))).toMatch(/rip=127\.0\.60\.16, [^\n]*\bTLS\b/);
  });

  it('with forwardClientInfo: false and no PROXY header, Dovecot sees mailgate (the baseline the ways above change)', async () => {
    const c = await connect('imap-plain', '127.0.60.30');
    await c.waitFor(GREETING.imap);
    c.write('z ID ("name" "baseline-client")\r\n');
    await c.waitFor(/z OK /);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    const log = await dovecotLog(/imap-login: Info: Login: user=<alice>[^\n]*rip=127\.0\.0\.1,/);
    expect(log).not.toMatch(/rip=127\.0\.60\.30\b/);
  });
});

describe('client-supplied identity is never believed', () => {
  it.each([
    ['imap', '127.0.60.40', 'z ID ("x-originating-ip" "6.6.6.6" "x-originating-port" "1" "x-session-id" "spoofed6")\r\nPROXY TCP4 6.6.6.6 127.0.0.1 1 143\r\n', /^\* ID NIL\r\nz OK [^\r]*\r\nPROXY BAD [^\r]*\r\n$/],
    ['pop3', '127.0.60.41', 'XCLIENT ADDR=6.6.6.6 PORT=1\r\nXOIP 6.6.6.6\r\nPROXY TCP4 6.6.6.6 127.0.0.1 1 110\r\n', /^(-ERR Unknown command\.\r\n){3}$/],
    ['smtp', '127.0.60.42', 'XCLIENT ADDR=6.6.6.6 PORT=1\r\nXFORWARD ADDR=6.6.6.6\r\nPROXY TCP4 6.6.6.6 127.0.0.1 1 587\r\n', /^(500 5\.5\.2 Command not recognized\r\n){3}$/],
  ] as const)('%s: ID x-*, XCLIENT, XOIP, XFORWARD and PROXY lines from the client change nothing', async (p, ip, spoof, answers) => {
    const c = await connect(`${p}-fwd`, ip);
    await c.waitFor(GREETING[p]);
    c.clear();
    c.write(spoof);
    await c.waitFor(answers);
    expect(await login(c, p)).toMatch(LOGGED_IN[p]);
    c.close();
    const log = await dovecotLog(loginLine(p, ip));
    expect(log).not.toContain('6.6.6.6');
    expect(log).not.toContain('spoofed6');
    expect(id.proxy.log.raw.join('\n')).not.toContain('6.6.6.6');
  });
});

describe('pre-login capabilities match Dovecot', () => {
  const OWNED_IMAP = /^(STARTTLS|LOGINDISABLED|AUTH=.*)$/i;
  const capsOf = (text: string) => (/\* CAPABILITY ([^\r]*)\r\n/.exec(text)?.[1] ?? '').split(' ').filter(Boolean);

  async function imapCaps(port: number, ip: string, starttls = false): Promise<string[]> {
    const c = await RawClient.connect(port, { localAddress: ip });
    await c.waitFor(GREETING.imap);
    if (starttls) {
      c.write('s STARTTLS\r\n');
      await c.waitFor(/s OK /);
      await c.startTls();
    }
    c.write('a CAPABILITY\r\n');
    const caps = capsOf(await c.waitFor(/a OK /));
    c.close();
    return caps;
  }

  it('IMAP: the same list as Dovecot minus what mailgate owns, before and after STARTTLS, through PROXY-out too', async () => {
    const own = (caps: string[]) => caps.filter((c) => !OWNED_IMAP.test(c)).sort();
    const dovecotCaps = await imapCaps(id.rig.dovecot.ports.imap, '127.0.60.60');
    expect(dovecotCaps).toEqual(expect.arrayContaining(['IMAP4rev1', 'LITERAL+', 'IDLE', 'ENABLE']));
    for (const [listener, starttls] of [['imap-plain', false], ['imap-starttls', false], ['imap-starttls', true], ['imap-v1', false], ['imap-v2', false]] as const) {
      const mine = await imapCaps(id.proxy.port(listener), '127.0.60.61', starttls);
      expect(own(mine), `${listener}${starttls ? ' after STARTTLS' : ''}`).toEqual(own(dovecotCaps));
    }
  });

  it('POP3: the same CAPA as Dovecot minus STLS, USER, SASL (ours), through PROXY-out too', async () => {
    const capa = async (port: number) => {
      const c = await RawClient.connect(port, { localAddress: '127.0.60.62' });
      await c.waitFor(GREETING.pop3);
      c.clear();
      c.write('CAPA\r\n');
      const lines = (await c.waitFor(/\r\n\.\r\n/)).split('\r\n').slice(1, -2);
      c.close();
      return lines.filter((l) => !/^(STLS|USER|SASL\b.*)$/.test(l)).sort();
    };
    const dovecotCapa = await capa(id.rig.dovecot.ports.pop3);
    expect(dovecotCapa).toEqual(expect.arrayContaining(['TOP', 'UIDL', 'PIPELINING']));
    for (const listener of ['pop3-plain', 'pop3-v1', 'pop3-v2']) expect(await capa(id.proxy.port(listener)), listener).toEqual(dovecotCapa);
  });
});
