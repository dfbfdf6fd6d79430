// Client-facing TLS settings. Several mail domains on one listener: tls.sni picks the
// certificate by the name the client asks for (exact, then a one-label wildcard), on implicit
// TLS and after STARTTLS, and the session goes on to a real Dovecot login; an unknown name or
// none gets tls.cert (also the selector alone). tls.minVersion turns older clients away in the
// handshake; tls.groups chooses the key exchange (by default the post-quantum hybrid).
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { sniSelector } from '../../src/server/tls.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';
import { certFor } from '../helpers/tls.js';

const rig = dovecotForFile();

/** Implicit TLS as a client with Node's defaults (asking for `servername`, if given): the common
 *  name of the certificate served, the key exchange group agreed, then a login's answer (the
 *  proxy serves, not only shakes hands). */
async function loginOverTls(port: number, servername?: string): Promise<{ cn: string; group: string | undefined; login: string }> {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername ? { servername } : {}) }, () => resolve(s));
    s.once('error', reject);
  });
  const cn = String(socket.getPeerCertificate().subject.CN);
  const info = socket.getEphemeralKeyInfo();
  const c = RawClient.wrap(socket);
  await c.waitFor(/^\* OK /m);
  c.write('a LOGIN alice alice-pass\r\n');
  const login = await c.waitFor(/^a (OK|NO|BAD)/m);
  c.close();
  return { cn, group: info && 'name' in info ? info.name : undefined, login };
}

describe('sniSelector', () => {
  const [a, b, c] = [{}, {}, {}] as tls.SecureContext[];
  const select = sniSelector([
    { names: ['mail.example.org'], context: a! },
    { names: ['*.example.net'], context: b! },
    { names: ['imap.example.net'], context: c! },
  ]);

  it.each([
    ['mail.example.org', 'a'],
    ['MAIL.Example.ORG', 'a'],
    ['mail.example.org.', 'a'],
    ['pop.example.net', 'b'],
    ['imap.example.net', 'c'], // an exact name wins over a wildcard
    ['example.net', undefined], // the wildcard covers one label, not the apex
    ['a.b.example.net', undefined], // nor two labels
    ['other.example.com', undefined],
    ['', undefined],
  ])('%j → %s', (name, want) => {
    const got = select(name);
    expect(got === undefined ? undefined : got === a ? 'a' : got === b ? 'b' : 'c').toBe(want);
  });
});

describe('tls.sni through the proxy', () => {
  let dir: string;
  let proxy: TestProxy;
  let config: Record<string, unknown>;
  let orgCert: { certPath: string; keyPath: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(os.tmpdir(), 'mailgate-sni-'));
    const [fallback, org, net] = await Promise.all([
      certFor(dir, ['default.example.com']),
      certFor(dir, ['mail.example.org', 'imap.example.org']),
      certFor(dir, ['*.example.net']),
    ]);
    orgCert = org;
    proxy = await rig.proxy((config = {
      listeners: [
        { name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'imap' },
        { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'starttls', backend: 'imap' },
      ],
      tls: {
        cert: fallback.certPath,
        key: fallback.keyPath,
        sni: [
          { names: ['mail.example.org', 'imap.example.org'], cert: org.certPath, key: org.keyPath },
          { names: ['*.example.net'], cert: net.certPath, key: net.keyPath },
        ],
      },
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Implicit TLS with `servername`: the common name of the certificate served, then a login. */
  const implicit = (servername: string | undefined) => loginOverTls(proxy.port('imaps'), servername);

  it.each([
    ['mail.example.org', 'mail.example.org'],
    ['IMAP.example.org', 'mail.example.org'],
    ['pop.example.net', '*.example.net'],
    ['unknown.example.com', 'default.example.com'],
    [undefined, 'default.example.com'],
  ])('implicit TLS asking for %j is served %j, and the login goes on', async (servername, cn) => {
    const before = proxy.log.lines.length;
    const r = await implicit(servername);
    expect(r.cn).toBe(cn);
    expect(r.login).toMatch(/^a OK /m);
    // The login's log line says which name the client asked for, and over which TLS.
    const line = proxy.log.lines.slice(before).find((l) => l.event === 'auth.attempt')!;
    expect(line).toMatchObject({ outcome: 'ok', tls: expect.stringMatching(/^TLSv1\.[23]$/) });
    expect(line.sni).toBe(servername);
  });

  it('a renewed certificate file is served after SIGHUP\'s reload, the listener unchanged', async () => {
    const fingerprint = async () => {
      const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port: proxy.port('imaps'), rejectUnauthorized: false, servername: 'mail.example.org' }, () => resolve(c));
        c.once('error', reject);
      });
      const f = s.getPeerCertificate().fingerprint256;
      s.destroy();
      return f;
    };
    const before = await fingerprint();
    mkdirSync(join(dir, 'renewed'));
    const renewed = await certFor(join(dir, 'renewed'), ['mail.example.org', 'imap.example.org']);
    copyFileSync(renewed.certPath, orgCert.certPath);
    copyFileSync(renewed.keyPath, orgCert.keyPath);
    const port = proxy.port('imaps');
    await proxy.reload(parseConfig(config));
    expect(proxy.port('imaps')).toBe(port);
    const after = await fingerprint();
    expect(after).not.toBe(before);
    expect(after).toBe(new X509Certificate(renewed.cert).fingerprint256);
    // A half-written renewal is refused and the running certificates stay.
    writeFileSync(orgCert.certPath, '-----BEGIN CERTIFICATE-----\ntruncated\n');
    await expect(proxy.reload(parseConfig(config))).rejects.toThrow(/tls\.sni\.0\.cert\/key/);
    expect(await fingerprint()).toBe(after);
  });

  it('after STARTTLS too', async () => {
    const c = await RawClient.connect(proxy.port('imap'));
    await c.waitFor(/^\* OK /m);
    c.write('s STARTTLS\r\n');
    await c.waitFor(/^s OK /m);
    await c.startTls({ servername: 'imap.example.net' });
    expect(String((c.socket as tls.TLSSocket).getPeerCertificate().subject.CN)).toBe('*.example.net');
    c.write('a LOGIN alice alice-pass\r\n');
    expect(await c.waitFor(/^a (OK|NO|BAD)/m)).toMatch(/^a OK /m);
    c.close();
  });
});

describe('tls.minVersion and tls.groups', () => {
  let dir: string;
  let certs = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(os.tmpdir(), 'mailgate-tlsver-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function proxyWith(minVersion?: string, groups?: string): Promise<TestProxy> {
    const cert = await certFor(dir, [`v${certs++}.example.com`]);
    return rig.proxy({
      listeners: [{ name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'imap' }],
      tls: { cert: cert.certPath, key: cert.keyPath, ...(minVersion ? { minVersion } : {}), ...(groups ? { groups } : {}) },
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    });
  }

  /** The protocol a client capped at `maxVersion` gets (once the greeting shows the proxy is
   *  past its side of the handshake), or the handshake error. */
  function handshake(port: number, maxVersion: tls.SecureVersion): Promise<string> {
    return new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion });
      s.once('data', () => {
        resolve(s.getProtocol() ?? 'none');
        s.destroy();
      });
      s.once('error', (err) => resolve(`error: ${err.message}`));
    });
  }

  it('the default (TLSv1.2) serves a TLS 1.2 client; TLSv1.3 turns it away and serves TLS 1.3', async () => {
    const byDefault = await proxyWith();
    expect(await handshake(byDefault.port('imaps'), 'TLSv1.2')).toBe('TLSv1.2');
    const strict = await proxyWith('TLSv1.3');
    expect(await handshake(strict.port('imaps'), 'TLSv1.2')).toMatch(/^error: .*(protocol version|alert)/i);
    expect(await handshake(strict.port('imaps'), 'TLSv1.3')).toBe('TLSv1.3');
    expect(strict.log.lines.some((l) => l.event === 'tls.failed')).toBe(true);
    // Who connects with which version, for the operator deciding on minVersion.
    expect(await byDefault.metrics.registry.metrics()).toMatch(/^mailgate_tls_handshakes_total\{listener="imaps",version="TLSv1\.2",resumed="no"\} 1$/m);
    expect(await strict.metrics.registry.metrics()).toMatch(/^mailgate_tls_handshakes_total\{listener="imaps",version="TLSv1\.3",resumed="no"\} 1$/m);
    expect(await strict.metrics.registry.metrics()).not.toMatch(/version="TLSv1\.2"/);
  });

  it('the default key exchange is the post-quantum hybrid; tls.groups chooses another, and the login goes on', async () => {
    const byDefault = await loginOverTls((await proxyWith()).port('imaps'));
    expect(byDefault.group).toBe('X25519MLKEM768');
    expect(byDefault.login).toMatch(/^a OK/m);
    const classic = await loginOverTls((await proxyWith(undefined, 'P-256')).port('imaps'));
    expect(classic.group).toBe('prime256v1');
    expect(classic.login).toMatch(/^a OK/m);
  });
});
