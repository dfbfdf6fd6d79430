// Shared setup of the client identity tests (identity, proxy-protocol-in): a real Dovecot
// that also takes PROXY headers from loopback (its haproxy listeners), one proxy with a
// listener per way of passing the client on and of receiving it from a balancer, and what a
// client sends to log in with Dovecot's own log line for it.
import { beforeAll } from 'vitest';
import { b64 } from './codec.js';
import { freePorts, waitForPort } from './ports.js';
import type { TestProxy } from './proxy.js';
import { RawClient } from './raw-client.js';
import { dovecotForFile, type DovecotRig } from './rig.js';

export const PROTOCOLS = ['imap', 'pop3', 'smtp'] as const;
export type Proto = (typeof PROTOCOLS)[number];
/** The balancer: its /24 is limits.trustedProxies of the proxy's PROXY-in listeners. */
export const LB = '127.0.61.1';

export interface IdentityRig {
  rig: DovecotRig;
  /** Listeners `<proto>-plain` (forwardClientInfo: false), `-auto` (its default), `-fwd`
   *  (forwardClientInfo: true), `-v1`/`-v2` (PROXY out), `-in` (PROXY in, then as `-fwd`),
   *  `imaps-in`, `imap-in-v2` (PROXY in, PROXY v2 out), `imap-starttls`, `imap-v2-tls` (PROXY
   *  out to implicit TLS). */
  proxy: TestProxy;
  connect(listener: string, localAddress: string): Promise<RawClient>;
  /** Dovecot writes its log asynchronously: wait (bounded) for a line to appear. */
  dovecotLog(pattern: RegExp): Promise<string>;
}

/** For a test file: the Dovecot and the proxy above, started before its tests. */
export function identityRig(): IdentityRig {
  const ha = { imap: 0, pop3: 0, smtp: 0, imaps: 0 };
  beforeAll(async () => {
    [ha.imap, ha.pop3, ha.smtp, ha.imaps] = (await freePorts(4)) as [number, number, number, number];
  });
  // Extra Dovecot listeners that expect a PROXY header (its "haproxy" support) from loopback,
  // on the ports taken above; the sink is for the SMTP logins' submission service.
  const rig = dovecotForFile(() => ({
    sink: true,
    extraConf: `
haproxy_trusted_networks = 127.0.0.0/8
service imap-login {
  inet_listener imap-haproxy {
    port = ${ha.imap}
    haproxy = yes
  }
  inet_listener imaps-haproxy {
    port = ${ha.imaps}
    haproxy = yes
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3-haproxy {
    port = ${ha.pop3}
    haproxy = yes
  }
}
service submission-login {
  inet_listener submission-haproxy {
    port = ${ha.smtp}
    haproxy = yes
  }
}
`,
  }));
  const h: IdentityRig = {
    rig,
    proxy: undefined as unknown as TestProxy,
    connect: (listener, localAddress) => RawClient.connect(h.proxy.port(listener), { localAddress }),
    async dovecotLog(pattern) {
      for (let i = 0; i < 200; i++) {
        const log = rig.dovecot.readLog();
        if (pattern.test(log)) return log;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`dovecot log never matched ${pattern}:\n${rig.dovecot.readLog().slice(-3000)}`);
    },
  };
  beforeAll(async () => {
    const { dovecot } = rig;
    await Promise.all(Object.values(ha).map((p) => waitForPort(p)));
    const plainPort = { imap: dovecot.ports.imap, pop3: dovecot.ports.pop3, smtp: dovecot.ports.submission };
    const listener = (name: string, protocol: Proto, backend: string, extra: Record<string, unknown> = {}) => ({
      name, protocol, listen: '127.0.0.1:0', tls: 'none', backend, hostname: 'mx.test', ...extra,
    });
    h.proxy = await rig.proxy({
      listeners: [
        ...PROTOCOLS.flatMap((p) => [
          listener(`${p}-plain`, p, p),
          listener(`${p}-auto`, p, `${p}-auto`),
          listener(`${p}-fwd`, p, `${p}-fwd`),
          listener(`${p}-v1`, p, `${p}-v1`),
          listener(`${p}-v2`, p, `${p}-v2`),
          listener(`${p}-in`, p, `${p}-fwd`, { proxyProtocol: true }),
        ]),
        listener('imaps-in', 'imap', 'imap-fwd', { tls: 'implicit', proxyProtocol: true }),
        listener('imap-in-v2', 'imap', 'imap-v2', { proxyProtocol: true }),
        listener('imap-starttls', 'imap', 'imap', { tls: 'starttls' }),
        listener('imap-v2-tls', 'imap', 'imap-v2-tls'),
      ],
      tls: { cert: dovecot.cert.certPath, key: dovecot.cert.keyPath },
      backends: Object.fromEntries([
        ...PROTOCOLS.flatMap((p) => [
          [p, { host: '127.0.0.1', port: plainPort[p], forwardClientInfo: false }],
          [`${p}-auto`, { host: '127.0.0.1', port: plainPort[p] }],
          [`${p}-fwd`, { host: '127.0.0.1', port: plainPort[p], forwardClientInfo: true }],
          [`${p}-v1`, { host: '127.0.0.1', port: ha[p], proxyProtocol: 'v1' }],
          [`${p}-v2`, { host: '127.0.0.1', port: ha[p], proxyProtocol: 'v2' }],
        ]),
        ['imap-v2-tls', { host: '127.0.0.1', port: ha.imaps, proxyProtocol: 'v2', tls: 'implicit', ca: dovecot.cert.certPath, servername: 'localhost' }],
      ]),
      limits: { trustedProxies: ['127.0.61.0/24'] },
    });
  });
  return h;
}

const SERVICE: Record<Proto, string> = { imap: 'imap-login', pop3: 'pop3-login', smtp: 'submission-login' };
export const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** Dovecot's own login line for alice from `ip`. */
export const loginLine = (p: Proto, ip: string) => new RegExp(`${SERVICE[p]}: Info: Login: user=<alice>[^\\n]*\\brip=${esc(ip)},`);

export const GREETING: Record<Proto, RegExp> = { imap: /^\* OK [^\r]*\r\n/, pop3: /^\+OK [^\r]*\r\n/, smtp: /^220 [^\r]*\r\n/ };

/** The protocol's login as a client sends it, after whatever came before (cleared); resolves
 *  with what the login itself got back. */
export async function login(c: RawClient, p: Proto): Promise<string> {
  c.clear();
  if (p === 'imap') {
    c.write('a LOGIN alice alice-pass\r\n');
    return c.waitFor(/^a (OK|NO|BAD) [^\r]*\r\n/m);
  }
  if (p === 'pop3') {
    c.write('USER alice\r\n');
    await c.waitFor(/^(\+OK|-ERR)[^\r]*\r\n/);
    c.clear();
    c.write('PASS alice-pass\r\n');
    return c.waitFor(/^(\+OK|-ERR)[^\r]*\r\n/);
  }
  c.write('EHLO client.test\r\n');
  await c.waitFor(/^250 [^\r]*\r\n/m);
  c.clear();
  c.write(`AUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
  return c.waitFor(/^\d{3} [^\r]*\r\n/m);
}
export const LOGGED_IN: Record<Proto, RegExp> = { imap: /^a OK /m, pop3: /^\+OK Logged in/, smtp: /^235 / };
