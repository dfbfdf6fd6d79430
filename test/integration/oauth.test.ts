// OAuth logins (OAUTHBEARER RFC 7628, XOAUTH2) through mailgate against a Dovecot that really
// checks tokens: its oauth2 passdb asks a token-introspection endpoint this test runs. Good
// tokens splice; a refused token's error challenge and the client's answer are relayed and
// the attempt counts as a failure; mechanisms the backend lacks are refused; no token in logs.
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import type { DovecotInstance } from '../helpers/dovecot.js';
import { oauthBearer, startIntrospection, xoauth2, type Introspection } from '../helpers/oauth.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotsForFile } from '../helpers/rig.js';

/** Valid tokens and whose they are; every other token is inactive. */
const ALICE = 'alice-token.4Nq_8~Zp+/x1';
const BOB = 'bob-token.Qw3-zY7';
const BAD = 'expired-token.mS9v2';
/** Dovecot's error challenges, as it sends them. */
const CHALLENGE = /^(\+|334) eyJ[A-Za-z0-9+/=]+\r\n/m;

let introspection: Introspection;
beforeAll(async () => {
  introspection = await startIntrospection({ [ALICE]: 'alice', [BOB]: 'bob' });
});
afterAll(async () => {
  await introspection?.stop();
});

// A Dovecot that checks tokens with the endpoint above, and one that knows passwords only.
const rig = dovecotsForFile(() => [{ oauth2: { introspectionUrl: introspection.url }, sink: true }, {}]);
let dovecot: DovecotInstance;
let passwordsOnly: DovecotInstance;
let proxy: TestProxy;

beforeAll(async () => {
  [dovecot, passwordsOnly] = rig.dovecots as [DovecotInstance, DovecotInstance];
  const listener = (name: string, protocol: string, backend: string) => ({ name, protocol, listen: '127.0.0.1:0', tls: 'none', backend, hostname: 'mx.test' });
  proxy = await rig.proxy({
    listeners: [
      listener('imap', 'imap', 'imap'),
      listener('pop3', 'pop3', 'pop3'),
      listener('smtp', 'smtp', 'smtp'),
      listener('imap-passwords', 'imap', 'imap-passwords'),
      listener('smtp-passwords', 'smtp', 'smtp-passwords'),
    ],
    backends: {
      imap: { host: '127.0.0.1', port: dovecot.ports.imap },
      pop3: { host: '127.0.0.1', port: dovecot.ports.pop3 },
      smtp: { host: '127.0.0.1', port: dovecot.ports.submission },
      'imap-passwords': { host: '127.0.0.1', port: passwordsOnly.ports.imap },
      'smtp-passwords': { host: '127.0.0.1', port: passwordsOnly.ports.submission },
    },
    // One failure from an IP and its next login is refused (successes never count).
    limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '1h' }] },
  });
});

async function greeted(listener: string, ip: string, greeting = /\r\n/): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port(listener), { localAddress: ip });
  await c.waitFor(greeting);
  return c;
}

async function send(c: RawClient, line: string, until: RegExp): Promise<string> {
  c.clear();
  c.write(`${line}\r\n`);
  return c.waitFor(until);
}

describe('good tokens log in and splice', () => {
  it('IMAP OAUTHBEARER with a real client (imapflow): offered, accepted by Dovecot, mailbox reachable', async () => {
    const c = await greeted('imap', '127.0.50.1');
    expect(await send(c, 'a CAPABILITY', /^a OK/m)).toMatch(/ AUTH=PLAIN AUTH=LOGIN AUTH=OAUTHBEARER AUTH=XOAUTH2\r\n/);
    c.close();
    const client = new ImapFlow({
      host: '127.0.0.1', port: proxy.port('imap'), secure: false, doSTARTTLS: false,
      auth: { user: 'alice', accessToken: ALICE }, logger: false,
    } as ConstructorParameters<typeof ImapFlow>[0]);
    await client.connect();
    const box = await client.mailboxOpen('INBOX');
    expect(box.path).toBe('INBOX');
    await client.logout();
    expect(await dovecot.settledLog()).toMatch(/imap-login: Info: Login: user=<alice>, method=OAUTHBEARER/);
  });

  it('IMAP XOAUTH2 by hand: the backend OK comes back under the client tag, then the backend answers directly', async () => {
    const c = await greeted('imap', '127.0.50.2');
    expect(await send(c, `t1 AUTHENTICATE XOAUTH2 ${b64(xoauth2('bob', BOB))}`, /^t1 (OK|NO)/m)).toMatch(/^t1 OK /m);
    // NAMESPACE is not a pre-login command: only the spliced backend answers it.
    expect(await send(c, 't2 NAMESPACE', /^t2 OK/m)).toMatch(/^\* NAMESPACE /m);
    c.close();
  });

  it('POP3 XOAUTH2 (the message on the continuation) logs in and STAT reaches the maildrop', async () => {
    const c = await greeted('pop3', '127.0.50.3');
    expect(await send(c, 'CAPA', /\r\n\.\r\n/)).toMatch(/\r\nSASL PLAIN LOGIN OAUTHBEARER XOAUTH2\r\n/);
    expect(await send(c, 'AUTH XOAUTH2', /\r\n/)).toBe('+ \r\n');
    expect(await send(c, b64(xoauth2('alice', ALICE)), /\r\n/)).toMatch(/^\+OK /);
    expect(await send(c, 'STAT', /\r\n/)).toMatch(/^\+OK \d+ \d+\r\n$/);
    c.close();
  });

  it('SMTP XOAUTH2 with a real client (nodemailer) sends a message through the splice', async () => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1', port: proxy.port('smtp'), secure: false, ignoreTLS: true, name: 'client.test',
      auth: { type: 'OAuth2', user: 'alice', accessToken: ALICE },
    });
    const info = await transport.sendMail({ from: 'alice@example.org', to: 'carol@example.org', subject: 'oauth', text: 'via XOAUTH2', messageId: '<oauth1@example.org>' });
    expect(info.accepted).toEqual(['carol@example.org']);
    expect(rig.sink.messages.some((m) => m.raw.toString().includes('<oauth1@example.org>'))).toBe(true);
    transport.close();
  });
});

describe('refused tokens', () => {
  it("IMAP: the backend's error challenge and the client's answer are relayed, the failure counts, the next login from that IP is refused", async () => {
    const c = await greeted('imap', '127.0.51.1');
    const challenged = await send(c, `a AUTHENTICATE OAUTHBEARER ${b64(oauthBearer('alice', BAD))}`, /\r\n/);
    expect(challenged).toMatch(CHALLENGE);
    expect(JSON.parse(Buffer.from(challenged.slice(2), 'base64').toString())).toMatchObject({ status: 'invalid_token' });
    expect(await send(c, 'AQ==', /^a (OK|NO|BAD)/m)).toMatch(/^a NO \[AUTHENTICATIONFAILED\] /m);
    // Limit 1 on failures: even a good token is now refused from this IP, as a temporary failure.
    expect(await send(c, `b AUTHENTICATE OAUTHBEARER ${b64(oauthBearer('alice', ALICE))}`, /^b NO/m)).toMatch(/^b NO \[UNAVAILABLE\] Too many login attempts/m);
    c.close();
    const line = proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === '127.0.51.1' && l.outcome === 'fail');
    expect(line).toMatchObject({ mechanism: 'OAUTHBEARER', user: 'alice', challenged: true });
    // Another IP is not affected.
    const other = await greeted('imap', '127.0.51.2');
    expect(await send(other, `c AUTHENTICATE OAUTHBEARER ${b64(oauthBearer('alice', ALICE))}`, /^c (OK|NO)/m)).toMatch(/^c OK /m);
    other.close();
  });

  it('SMTP XOAUTH2 with a real client: 334 challenge and empty answer relayed, the failure counts', async () => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1', port: proxy.port('smtp'), secure: false, ignoreTLS: true, name: 'client.test', localAddress: '127.0.51.3',
      auth: { type: 'OAuth2', user: 'bob', accessToken: BAD },
    } as Parameters<typeof nodemailer.createTransport>[0]);
    // nodemailer answers the 334 with an empty line, reads the backend's 535, then retries once
    // with a "fresh" token on the same connection: by then the failures rule refuses it.
    await expect(transport.verify()).rejects.toThrow(/454 4\.7\.0 Too many login attempts/);
    transport.close();
    const attempts = proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.ip === '127.0.51.3');
    expect(attempts.map((l) => [l.mechanism, l.outcome, l.challenged])).toEqual([['XOAUTH2', 'fail', true], ['XOAUTH2', 'limited', undefined]]);
    expect(await dovecot.settledLog()).toMatch(/oauth2\(bob,[^)]*\): oauth2 failed: Introspection failed/);
    const c = await greeted('smtp', '127.0.51.3', /^220 /m);
    await send(c, 'EHLO client.test', /^250 /m);
    expect(await send(c, `AUTH XOAUTH2 ${b64(xoauth2('bob', BOB))}`, /^\d{3} /m)).toMatch(/^454 4\.7\.0 Too many login attempts/m);
    c.close();
  });

  it('SMTP by hand: the 535 that ends the relayed exchange is the backend\'s own', async () => {
    const c = await greeted('smtp', '127.0.51.6', /^220 /m);
    await send(c, 'EHLO client.test', /^250 /m);
    expect(await send(c, `AUTH OAUTHBEARER ${b64(oauthBearer('bob', BAD, 587))}`, /\r\n/)).toMatch(CHALLENGE);
    expect(await send(c, 'AQ==', /^\d{3} /m)).toMatch(/^535 5\.7\.8 Authentication failed\.\r\n$/);
    c.close();
  });

  it('POP3: a client that leaves instead of answering the challenge still counts a failure', async () => {
    const c = await greeted('pop3', '127.0.51.4');
    expect(await send(c, `AUTH OAUTHBEARER ${b64(oauthBearer('alice', BAD))}`, /\r\n/)).toMatch(CHALLENGE);
    c.close();
    // The attempt settles once mailgate sees the client gone.
    const deadline = Date.now() + 10_000;
    while (!proxy.log.lines.some((l) => l.event === 'auth.attempt' && l.ip === '127.0.51.4' && l.outcome === 'fail')) {
      if (Date.now() > deadline) throw new Error('the abandoned attempt was never settled');
      await new Promise((r) => setTimeout(r, 50));
    }
    const again = await greeted('pop3', '127.0.51.4');
    expect(await send(again, `AUTH XOAUTH2 ${b64(xoauth2('alice', ALICE))}`, /\r\n/)).toMatch(/^-ERR \[SYS\/TEMP\] Too many login attempts/);
    again.close();
  });

  it('POP3 "*" in answer to the challenge is relayed as a cancel and still counts', async () => {
    const c = await greeted('pop3', '127.0.51.5');
    expect(await send(c, `AUTH XOAUTH2 ${b64(xoauth2('bob', BAD))}`, /\r\n/)).toMatch(CHALLENGE);
    expect(await send(c, '*', /\r\n/)).toMatch(/^-ERR /);
    expect(await send(c, `AUTH XOAUTH2 ${b64(xoauth2('bob', BOB))}`, /\r\n/)).toMatch(/^-ERR \[SYS\/TEMP\] Too many login attempts/);
    c.close();
  });
});

describe('a backend without token mechanisms', () => {
  it('IMAP and SMTP neither offer nor accept OAUTHBEARER or XOAUTH2, and nothing reaches the backend', async () => {
    const seen = introspection.seen.length;
    const imap = await greeted('imap-passwords', '127.0.52.1');
    const caps = await send(imap, 'a CAPABILITY', /^a OK/m);
    expect(caps).toMatch(/AUTH=PLAIN/);
    expect(caps).not.toMatch(/OAUTHBEARER|XOAUTH2/);
    expect(await send(imap, `b AUTHENTICATE OAUTHBEARER ${b64(oauthBearer('alice', ALICE))}`, /^b /m)).toMatch(/^b NO \[CANNOT\] /m);
    expect(await send(imap, `c AUTHENTICATE XOAUTH2 ${b64(xoauth2('alice', ALICE))}`, /^c /m)).toMatch(/^c NO \[CANNOT\] /m);
    imap.close();
    const smtp = await greeted('smtp-passwords', '127.0.52.1', /^220 /m);
    const ehlo = await send(smtp, 'EHLO client.test', /^250 /m);
    expect(ehlo).toMatch(/^250-AUTH PLAIN LOGIN\r\n|^250 AUTH PLAIN LOGIN\r\n/m);
    expect(await send(smtp, `AUTH XOAUTH2 ${b64(xoauth2('alice', ALICE))}`, /^\d{3} /m)).toMatch(/^504 /m);
    smtp.close();
    expect(introspection.seen.length).toBe(seen);
    expect(await passwordsOnly.settledLog()).not.toMatch(/method=(OAUTHBEARER|XOAUTH2)|oauth/i);
  });
});

describe('secrets', () => {
  it('no token, whole or base64-encoded in any message, appears in the proxy log', () => {
    const log = proxy.log.raw.join('\n');
    expect(proxy.log.lines.some((l) => l.event === 'auth.attempt' && l.outcome === 'ok' && l.mechanism === 'XOAUTH2')).toBe(true);
    for (const token of [ALICE, BOB, BAD]) {
      expect(log).not.toContain(token);
      for (const user of ['alice', 'bob']) {
        expect(log).not.toContain(b64(oauthBearer(user, token)));
        expect(log).not.toContain(b64(xoauth2(user, token)));
      }
    }
  });
});
