// Hostile: a client's EHLO name travels to the backend in XCLIENT HELO= and in mailgate's own
// EHLO, so a name is validated before use and xtext-encoded in XCLIENT (nginx CVE-2026-28753:
// an unchecked name injected into XCLIENT). Over real sockets, through a scripted FAKE SMTP
// backend (not Dovecot: it must record every line it is sent, and offer XCLIENT HELO to an
// untrusted peer): names with CR, LF, NUL, spaces, 8-bit bytes or 300 characters never reach
// it, "+" and "=" reach it only xtext-encoded in XCLIENT, and the replay itself refuses a bad
// name handed to it directly, before writing a byte of it.
//
// Already covered elsewhere: the machine's checks byte by byte (unit/smtp-machine.test.ts),
// the XCLIENT builder (unit/proxy-header.test.ts), a well-behaved name against fakes and
// Dovecot (integration/identity-fake-backend.test.ts, integration/front-door.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { smtpBackendLogin } from '../../src/backend/login-smtp.js';
import type { LoginContext } from '../../src/backend/types.js';
import { parseBackend } from '../helpers/backend-config.js';
import { b64 } from '../helpers/codec.js';
import { startFakeBackend, type FakeBackend } from '../helpers/fake-backend.js';
import { greeted } from '../helpers/hostile.js';
import { HOSTILE_EHLO_NAMES } from '../helpers/hostile-names.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { until } from '../helpers/until.js';

const AUTH = `AUTH PLAIN ${b64('\0alice\0alice-pass')}`;

/** A FAKE submission server offering XCLIENT with HELO, taking any AUTH PLAIN. */
const onLine = (l: string) =>
  l.startsWith('EHLO ') ? '250-fake\r\n250-XCLIENT ADDR PORT HELO\r\n250 AUTH PLAIN\r\n'
  : l.startsWith('XCLIENT ') ? '220 fake ESMTP\r\n'
  : l.startsWith('AUTH ') ? '235 2.7.0 ok\r\n'
  : l === 'QUIT' ? { close: '221 bye\r\n' } : undefined;

let fake: FakeBackend;
let proxy: TestProxy;

beforeAll(async () => {
  fake = await startFakeBackend('220 fake ESMTP\r\n', onLine);
  proxy = await startTestProxy({
    listeners: [{ name: 'smtp', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'none', backend: 'smtp', hostname: 'mx.test' }],
    backends: { smtp: fake.cfg() },
    limits: { rules: [] },
  });
});

afterAll(async () => {
  await proxy?.stop();
  await fake?.stop();
});

/** Logs in through mailgate after `ehlos`; returns the lines the backend got for that login. */
async function loginAfter(ehlos: Buffer, n: number): Promise<string[]> {
  const before = fake.raw().length;
  const c = await greeted('smtp', proxy.port('smtp'), { localAddress: `127.0.76.${40 + n}` });
  c.write(Buffer.concat([ehlos, Buffer.from(`${AUTH}\r\n`)]));
  await c.waitFor(/^235 /m);
  c.close();
  // The connection that carried the login (a capability probe may come between).
  const login = () => fake.raw().slice(before).find((b) => b.includes('AUTH PLAIN'));
  await until(() => login() !== undefined, 'the login to reach the fake backend');
  return login()!.toString('latin1').split('\r\n').slice(0, -1);
}

describe('a hostile EHLO name never reaches the backend raw', () => {
  it.each([...HOSTILE_EHLO_NAMES, ['CR LF (two lines: the second runs here, not there)', 'evil.test\r\nRSET']])('%s: the backend sees only names mailgate accepted, on lines of its own', async (_, hostile) => {
    // The client's bytes, one per char (RawClient would write a string as UTF-8).
    const lines = await loginAfter(Buffer.from(`EHLO good.test\r\nEHLO ${hostile}\r\n`, 'latin1'), 0);
    const name = hostile.includes('\r\n') ? 'evil.test' : 'good.test';
    const xclient = new RegExp(`^XCLIENT ADDR=127\\.0\\.76\\.40 PORT=\\d+ HELO=${name.replace('.', '\\.')}$`);
    expect(lines).toEqual([`EHLO ${name}`, expect.stringMatching(xclient), `EHLO ${name}`, AUTH]);
    expect(lines.join('\n')).not.toMatch(/RSET|[\x00\x7f-\xff]|h{256}/);
  });

  it('"+" and "=" are xtext in XCLIENT (+2B, +3D) and as written in mailgate\'s EHLO', async () => {
    const lines = await loginAfter(Buffer.from('EHLO pc+1=x.test\r\n'), 1);
    expect(lines[1]).toMatch(/^XCLIENT ADDR=127\.0\.76\.41 PORT=\d+ HELO=pc\+2B1\+3Dx\.test$/);
    expect(lines.filter((l) => l.startsWith('EHLO '))).toEqual(['EHLO pc+1=x.test', 'EHLO pc+1=x.test']);
  });
});

describe('the replay checks a name handed to it, before writing it', () => {
  const ctx: LoginContext = { tag: '', hostname: 'mx.test', client: { ip: '203.0.113.20', port: 40000, localIp: '127.0.0.1', localPort: 587, sessionId: 'abc1' } };
  const creds = () => ({ mechanism: 'PLAIN' as const, user: Buffer.from('alice'), password: Buffer.from('alice-pass') });

  it.each(['evil\r\nRSET', 'evil RSET', 'évil', 'h'.repeat(256), ''])('%j: a temporary failure; neither the name nor the credentials are sent', async (helo) => {
    const before = fake.lines.length;
    const r = await smtpBackendLogin(parseBackend(fake.cfg()), creds(), { ...ctx, helo });
    expect(r).toMatchObject({ kind: 'unavailable', error: expect.stringMatching(/bad EHLO name/) });
    // Only mailgate's own capability probe (EHLO with its host name) may come meanwhile.
    expect(fake.lines.slice(before).filter((l) => !/^(?:EHLO mx\.test|QUIT)$/.test(l))).toEqual([]);
  });
});
