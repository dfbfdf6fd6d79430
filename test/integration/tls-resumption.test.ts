// TLS session resumption (issue 22) through a real listener in front of a real Dovecot: a
// client that offers its last session resumes it (TLS 1.3 and 1.2, implicit TLS and STARTTLS,
// with an SNI certificate too) and logs in; a reload keeps the ticket keys; tls.sessionTickets
// off resumes nothing; a rotation voids the tickets of the keys before it, and the full
// handshake that follows hands out one that resumes.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';
import { certFor } from '../helpers/tls.js';
import { reconnect, resumableLogin, type ResumeOptions } from '../helpers/tls-resume.js';
import { until } from '../helpers/until.js';

const rig = dovecotForFile();
let dir: string;
let certs: { fallback: { certPath: string; keyPath: string }; org: { certPath: string; keyPath: string } };

beforeAll(async () => {
  dir = mkdtempSync(join(os.tmpdir(), 'mailgate-resume-'));
  const [fallback, org] = await Promise.all([certFor(dir, ['default.example.com']), certFor(dir, ['mail.example.org'])]);
  certs = { fallback, org };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (tlsExtra: Record<string, unknown> = {}) => ({
  listeners: [
    { name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'imap' },
    { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'starttls', backend: 'imap' },
  ],
  tls: { cert: certs.fallback.certPath, key: certs.fallback.keyPath, sni: [{ names: ['mail.example.org'], cert: certs.org.certPath, key: certs.org.keyPath }], ...tlsExtra },
  backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
});

/** Resumed handshakes of that TLS version so far, over every listener, from /metrics. */
async function resumedCount(proxy: TestProxy, version: string): Promise<number> {
  const text = await proxy.metrics.registry.metrics();
  let n = 0;
  for (const m of text.matchAll(/^mailgate_tls_handshakes_total\{listener="[^"]+",version="([^"]+)",resumed="yes"\} (\d+)$/gm)) if (m[1] === version) n += Number(m[2]);
  return n;
}

const portOf = (proxy: TestProxy, mode: ResumeOptions['mode']) => proxy.port(mode === 'implicit' ? 'imaps' : 'imap');

describe('with session tickets (the default)', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await rig.proxy(config());
  });

  it.each([
    ['implicit', 'TLSv1.3', undefined],
    ['implicit', 'TLSv1.2', undefined],
    ['starttls', 'TLSv1.3', undefined],
    ['starttls', 'TLSv1.2', undefined],
    ['implicit', 'TLSv1.3', 'mail.example.org'],
    ['starttls', 'TLSv1.2', 'mail.example.org'],
  ] as const)('%s %s (SNI %s): a full handshake, then 10 reconnections with its session all resume and log in', async (mode, maxVersion, servername) => {
    const opts = { mode, maxVersion, ...(servername ? { servername } : {}) };
    const first = await resumableLogin(portOf(proxy, mode), opts);
    expect(first).toMatchObject({ reused: false, protocol: maxVersion });
    expect(first.login).toMatch(/^a OK /m);
    expect(first.session).toBeDefined();
    const resumedBefore = await resumedCount(proxy, maxVersion);
    const again = await reconnect(portOf(proxy, mode), { ...opts, session: first.session! }, 10);
    expect(again.map((r) => r.reused)).toEqual(Array(10).fill(true));
    for (const r of again) expect(r.login).toMatch(/^a OK /m);
    // The operator sees them: mailgate_tls_handshakes_total{resumed="yes"}.
    expect((await resumedCount(proxy, maxVersion)) - resumedBefore).toBe(10);
  });

  it('a reload keeps the ticket keys: a session from before it resumes after it', async () => {
    const first = await resumableLogin(proxy.port('imaps'), { mode: 'implicit' });
    await proxy.reload(parseConfig(config()));
    const after = await resumableLogin(proxy.port('imaps'), { mode: 'implicit', session: first.session! });
    expect(after.reused).toBe(true);
    expect(after.login).toMatch(/^a OK /m);
  });
});

describe('tls.sessionTickets: false', () => {
  it.each(['TLSv1.3', 'TLSv1.2'] as const)('%s: every connection is a full handshake', async (maxVersion) => {
    const proxy = await rig.proxy(config({ sessionTickets: false }));
    const first = await resumableLogin(proxy.port('imaps'), { mode: 'implicit', maxVersion });
    expect(first.login).toMatch(/^a OK /m);
    // TLS 1.3 still gets a (stateful) ticket it cannot use: nothing keeps the session behind it.
    if (first.session) expect((await resumableLogin(proxy.port('imaps'), { mode: 'implicit', maxVersion, session: first.session })).reused).toBe(false);
  });
});

describe('tls.ticketRotation', () => {
  it.each(['TLSv1.3', 'TLSv1.2'] as const)('%s: after a rotation the old session no longer resumes, and the new one it gets does', async (maxVersion) => {
    const proxy = await rig.proxy(config({ ticketRotation: '2s' }));
    const port = proxy.port('imaps');
    const first = await resumableLogin(port, { mode: 'implicit', maxVersion });
    expect(first.reused).toBe(false);
    // Poll for the rotation: the first session resumes until it happens (deadline: until's).
    let fresh: Buffer | undefined;
    await until(async () => {
      const r = await resumableLogin(port, { mode: 'implicit', maxVersion, session: first.session! });
      fresh = r.session;
      return !r.reused;
    }, 'a rotation');
    const next = await resumableLogin(port, { mode: 'implicit', maxVersion, session: fresh! });
    expect(next.reused).toBe(true);
    expect(next.login).toMatch(/^a OK /m);
  });
});
