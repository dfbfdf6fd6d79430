// The front door: mailgate in front of a stock Dovecot, its own auth penalty on as shipped
// (anvil, per client address) and login_trusted_networks holding mailgate's address only, the
// backends configured as shipped (forwardClientInfo at its default). Dovecot must hold the
// attackers' failures against the attackers, not against mailgate: its log names each real
// client (rip=) and its penalty table holds the attackers' addresses, never mailgate's, so
// another user's login is not slowed. What Dovecot records is asserted, never timings.
import { beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

/** Where mailgate's backend connections come from; clients use other 127.x.y.z addresses. */
const MAILGATE = '127.0.0.1';
const rig = dovecotForFile({ sink: true, penalty: true, trustedNetworks: [`${MAILGATE}/32`] });

const PROTOCOLS = ['imap', 'pop3', 'smtp'] as const;
type Proto = (typeof PROTOCOLS)[number];
const ATTACKERS = 30;

/** One login on a fresh connection to `listener`; resolves with the verdict line. */
async function tryLogin(port: number, p: Proto, from: string, user: string, pass: string): Promise<string> {
  const c = await RawClient.connect(port, { localAddress: from });
  try {
    await c.waitFor(/\r\n/);
    c.clear();
    if (p === 'imap') {
      c.write(`a LOGIN ${user} ${pass}\r\n`);
      return await c.waitFor(/^a (OK|NO|BAD) [^\r]*\r\n/m);
    }
    if (p === 'pop3') {
      c.write(`USER ${user}\r\n`);
      await c.waitFor(/^(\+OK|-ERR)[^\r]*\r\n/);
      c.clear();
      c.write(`PASS ${pass}\r\n`);
      return await c.waitFor(/^(\+OK|-ERR)[^\r]*\r\n/);
    }
    c.write(`EHLO host-${from.replaceAll('.', '-')}.example\r\n`);
    await c.waitFor(/^250 [^\r]*\r\n/m);
    c.clear();
    c.write(`AUTH PLAIN ${b64(`\0${user}\0${pass}`)}\r\n`);
    return await c.waitFor(/^\d{3} [^\r]*\r\n/m);
  } finally {
    c.close();
  }
}

const FAILED: Record<Proto, RegExp> = { imap: /^a NO /, pop3: /^-ERR /, smtp: /^535 / };
const LOGGED_IN: Record<Proto, RegExp> = { imap: /^a OK /, pop3: /^\+OK /, smtp: /^235 / };
const SERVICE: Record<Proto, string> = { imap: 'imap-login', pop3: 'pop3-login', smtp: 'submission-login' };
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let proxy: TestProxy;
beforeAll(async () => {
  const { dovecot } = rig;
  const port: Record<Proto, number> = { imap: dovecot.ports.imap, pop3: dovecot.ports.pop3, smtp: dovecot.ports.submission };
  proxy = await rig.proxy({
    listeners: [
      ...PROTOCOLS.map((p) => ({ name: p, protocol: p, listen: '127.0.0.1:0', tls: 'none', backend: p, hostname: 'mx.test' })),
      { name: 'untold', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'untold' },
    ],
    // As config/mailgate.yaml ships them: host and port, nothing about the client address.
    backends: {
      ...Object.fromEntries(PROTOCOLS.map((p) => [p, { host: '127.0.0.1', port: port[p] }])),
      untold: { host: '127.0.0.1', port: port.imap, forwardClientInfo: false },
    },
    // No rules: every guess reaches Dovecot, the worst case for its penalty (mailgate's own
    // limits are tested elsewhere).
  });
});

describe('the front door: a stock Dovecot with its penalty on, behind mailgate as shipped', () => {
  it.each(PROTOCOLS.map((p, k) => [p, k] as const))(
    '%s: 30 attackers fail; Dovecot logs and penalises each attacker, never mailgate; another user logs in',
    async (p, k) => {
      const attackers = Array.from({ length: ATTACKERS }, (_, n) => `127.${100 + n}.${k}.9`);
      const colleague = `127.0.90.${k + 1}`;
      const mark = await rig.dovecot.logMark();
      const verdicts = await Promise.all(attackers.map((ip, n) => tryLogin(proxy.port(p), p, ip, 'alice', `guess-${n}`)));
      for (const v of verdicts) expect(v).toMatch(FAILED[p]);
      expect(await tryLogin(proxy.port(p), p, colleague, 'bob', 'bob-pass')).toMatch(LOGGED_IN[p]);

      const log = await rig.dovecot.settledLog(mark);
      // Dovecot's auth process saw each attacker's address (the penalty is kept by it) ...
      for (const ip of attackers) expect(log).toMatch(new RegExp(`passwd-file\\(alice,${esc(ip)},[^\\n]*Password mismatch`));
      // ... its login process names each attacker and the colleague, and mailgate never.
      for (const ip of attackers) expect(log).toMatch(new RegExp(`${SERVICE[p]}: Info: [^\\n]*user=<alice>[^\\n]*rip=${esc(ip)},`));
      expect(log).toMatch(new RegExp(`${SERVICE[p]}: Info: Login: user=<bob>[^\\n]*rip=${esc(colleague)},`));
      expect(log).not.toMatch(new RegExp(`(user=<(alice|bob)>[^\\n]*rip=|passwd-file\\([^,]*,)${esc(MAILGATE)},`));

      // Dovecot's own penalty table: every attacker, not mailgate, not the colleague.
      const penalties = await rig.dovecot.penalties();
      for (const ip of attackers) expect(penalties.get(ip), ip).toBeGreaterThanOrEqual(1);
      expect(penalties.has(MAILGATE)).toBe(false);
      expect(penalties.has(colleague)).toBe(false);
    },
  );

  // Last: it puts mailgate's own address in Dovecot's penalty table, which the tests above
  // assert is never there.
  it('the control: with forwardClientInfo: false Dovecot holds a failure against mailgate itself', async () => {
    expect(await tryLogin(proxy.port('untold'), 'imap', '127.0.91.1', 'alice', 'wrong')).toMatch(FAILED.imap);
    expect(await rig.dovecot.settledLog()).toMatch(new RegExp(`passwd-file\\(alice,${esc(MAILGATE)},[^\\n]*Password mismatch`));
    expect((await rig.dovecot.penalties()).get(MAILGATE)).toBeGreaterThanOrEqual(1);
  });
});
