// Hostile: after the login mailgate is a pipe. Bytes a parser might "normalise" (bare LF and
// CR, lone dots, NUL, 8-bit, an SMTP DATA with the bare-LF end-of-data variants used for SMTP
// smuggling) reach the backend exactly as sent, for IMAP, POP3 and SMTP, so mailgate adds no
// parser differential: the backend alone decides where a message ends. A scripted fake
// backend records the bytes (it accepts any password).
//
// Already covered elsewhere: messages byte for byte through real Dovecot (APPEND/FETCH in
// integration/imap.test.ts, RETR in pop3.test.ts, submission in smtp.test.ts); the splice
// itself over loopback (integration/splice.test.ts).
import { describe, expect, it } from 'vitest';
import { startFakeBackend, type FakeAction } from '../helpers/fake-backend.js';
import { greeted, LOGIN_OK, loginBytes, PROTOS, proxyConfig, type Proto } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile(); // only for the listeners proxyConfig always builds

/** A FAKE backend that logs anyone in and then says nothing. Its IMAP LOGIN arrives with
 *  non-synchronizing literals, so the password "pw" is a line of its own: answered there. */
const FAKE: Record<Proto, { greeting: string; onLine: (l: string) => FakeAction }> = {
  imap: { greeting: '* OK [CAPABILITY IMAP4rev1 LITERAL+] fake\r\n', onLine: (l) => (l.startsWith('mg1 LOGIN') ? undefined : l === 'pw' ? 'mg1 OK Logged in\r\n' : undefined) },
  pop3: { greeting: '+OK fake\r\n', onLine: (l) => (l === 'CAPA' ? '+OK\r\nSASL PLAIN\r\n.\r\n' : l.startsWith('AUTH PLAIN') ? '+OK Logged in.\r\n' : undefined) },
  smtp: { greeting: '220 fake ESMTP\r\n', onLine: (l) => (l.startsWith('EHLO') ? '250-fake\r\n250 AUTH PLAIN\r\n' : l.startsWith('AUTH PLAIN') ? '235 2.7.0 ok\r\n' : undefined) },
};

const EVERY_BYTE = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const SMUGGLE = Buffer.from(
  'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\n' +
    'body\r\n.\nRCPT TO:<victim@example.org>\n\r.\r\n..\r\n. \r\n\r\n.\r\n',
  'latin1',
);

describe('after login the splice forwards bytes unchanged', () => {
  it.each(PROTOS)('%s: bare LF/CR, lone dots, NUL, every byte value and an SMTP smuggling attempt arrive as sent', async (proto) => {
    const fake = await startFakeBackend(FAKE[proto].greeting, FAKE[proto].onLine);
    const cfg = proxyConfig(rig.dovecot, { backends: { fake: fake.cfg() } });
    cfg.listeners.push({ name: 'fake', protocol: proto, listen: '127.0.0.1:0', tls: 'none', backend: 'fake', hostname: 'mx.test' });
    const p = await rig.proxy(cfg);
    try {
      const c = await greeted(proto, p.port('fake'), { localAddress: `127.0.58.${1 + PROTOS.indexOf(proto)}` });
      c.write(loginBytes(proto, 'alice', 'pw'));
      await c.waitFor(LOGIN_OK[proto]);
      const payload = Buffer.concat([SMUGGLE, EVERY_BYTE, SMUGGLE]);
      c.write(payload);
      const session = () => fake.raw().find((b) => b.includes('MAIL FROM:<evil'));
      await until(() => (session()?.length ?? 0) > 0 && session()!.subarray(-payload.length).equals(payload), 'the payload at the fake backend');
      c.close();
    } finally {
      await p.stop();
      await fake.stop();
    }
  });
});
