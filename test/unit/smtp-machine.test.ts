// Unit tests for the SMTP submission pre-auth machine: every byte stream run as one chunk
// and byte by byte with identical effects. Pure: no sockets.
import { describe, expect, it } from 'vitest';
import type { MachineOptions } from '../../src/protocols/protocol.js';
import { b64 } from '../helpers/codec.js';
import { HOSTILE_EHLO_NAMES } from '../helpers/hostile-names.js';
import { machineDriver, result, tls, type Step } from '../helpers/machine-driver.js';
import { smtp } from '../../src/protocols/smtp/index.js';

const BACKEND = ['PIPELINING', 'SIZE 10240000', 'VRFY', 'ETRN', 'ENHANCEDSTATUSCODES', '8BITMIME', 'DSN', 'AUTH PLAIN', 'XCLIENT ADDR', 'BURL imap', 'STARTTLS', 'CHUNKING'];
const driver = machineDriver(smtp, { hostname: 'mx.test', backendCapabilities: BACKEND });
const opts = driver.opts;
/** SMTP tests look at the greeting too. */
const drive = (o: Partial<MachineOptions>, steps: Step[]) => driver.drive(o, steps, true);
const run = (o: MachineOptions, steps: Step[], bytewise: boolean) => driver.run(o, steps, bytewise, true);

describe('SMTP machine: greeting and EHLO', () => {
  it('greets with 220 and the host name', () => {
    expect(drive({}, []).text).toBe('220 mx.test ESMTP ready\r\n');
  });

  it('before TLS: STARTTLS, no AUTH, and only the backend keywords we pass on', () => {
    const { lines } = drive({}, ['EHLO client.test\r\n']);
    expect(lines).toEqual([
      '220 mx.test ESMTP ready',
      '250-mx.test',
      '250-PIPELINING',
      '250-SIZE 10240000',
      '250-ENHANCEDSTATUSCODES',
      '250-8BITMIME',
      '250-DSN',
      '250-CHUNKING',
      '250 STARTTLS',
    ]);
  });

  it('after TLS: AUTH PLAIN LOGIN and no STARTTLS', () => {
    const { lines } = drive({}, ['STARTTLS\r\n', tls, 'EHLO client.test\r\n']);
    expect(lines.at(-1)).toBe('250 AUTH PLAIN LOGIN');
    expect(lines.join('\n')).not.toMatch(/250.STARTTLS/);
  });

  it('without a probe result nothing optional is advertised', () => {
    const { lines } = drive({ backendCapabilities: [], tlsMode: 'implicit' }, ['EHLO c\r\n']);
    expect(lines.slice(1)).toEqual(['250-mx.test', '250 AUTH PLAIN LOGIN']);
  });

  it('EHLO without a name is a syntax error; HELO answers without extensions', () => {
    const { lines } = drive({}, ['EHLO\r\n', 'HELO c\r\n']);
    expect(lines.slice(1)).toEqual(['501 5.5.4 Syntax: EHLO hostname', '250 mx.test']);
  });
});

describe('SMTP machine: STARTTLS', () => {
  it('discards plaintext pipelined after STARTTLS and forgets EHLO', () => {
    const { effects, lines, logins } = drive({}, [`EHLO c\r\nSTARTTLS\r\nEHLO x\r\nAUTH PLAIN ${b64('\0a\0b')}\r\n`, tls, `AUTH PLAIN ${b64('\0a\0b')}\r\n`]);
    expect(logins).toEqual([]);
    expect(lines.at(-2)).toBe('220 2.0.0 Ready to start TLS');
    expect(lines.at(-1)).toBe('503 5.5.1 Send EHLO first');
    const start = run(opts(), [`EHLO c\r\nSTARTTLS\r\nEHLO x\r\n`], false).find((e) => e.type === 'startTls');
    expect(start).toEqual({ type: 'startTls', discarded: 8 });
    expect(effects.filter((e) => e.type === 'startTls')).toHaveLength(1);
  });

  it('STARTTLS twice, on an implicit listener, or where not offered is refused', () => {
    expect(drive({}, ['STARTTLS\r\n', tls, 'STARTTLS\r\n']).lines.at(-1)).toBe('503 5.5.1 TLS already active');
    expect(drive({ tlsMode: 'implicit' }, ['STARTTLS\r\n']).lines.at(-1)).toBe('503 5.5.1 TLS already active');
    expect(drive({ tlsMode: 'none', requireTls: false }, ['STARTTLS\r\n']).lines.at(-1)).toBe('502 5.5.1 STARTTLS not available');
  });
});

describe('SMTP machine: AUTH', () => {
  const secure = { tlsMode: 'implicit' as const };

  it('AUTH before TLS is refused with 530 and no login', () => {
    const { lines, logins } = drive({}, [`EHLO c\r\nAUTH PLAIN ${b64('\0alice\0pw')}\r\n`]);
    expect(logins).toEqual([]);
    expect(lines.at(-1)).toBe('530 5.7.0 Must issue a STARTTLS command first');
  });

  it('AUTH needs EHLO, not HELO', () => {
    expect(drive(secure, ['AUTH PLAIN =\r\n']).lines.at(-1)).toBe('503 5.5.1 Send EHLO first');
    expect(drive(secure, ['HELO c\r\nAUTH PLAIN =\r\n']).lines.at(-1)).toBe('503 5.5.1 Send EHLO first');
  });

  it('PLAIN with an initial response logs in', () => {
    const { logins } = drive(secure, [`EHLO c\r\nAUTH PLAIN ${b64('\0alice\0pw')}\r\n`]);
    expect(logins).toHaveLength(1);
    expect(logins[0]!.credentials.user.toString()).toBe('alice');
    expect(logins[0]!.credentials.password.toString()).toBe('pw');
    expect(logins[0]!.context).toEqual({ tag: '', helo: 'c' });
  });

  it("the login carries the client's last valid EHLO name, forgotten at STARTTLS", () => {
    const login = `AUTH PLAIN ${b64('\0alice\0pw')}\r\n`;
    const helo = (o: Partial<MachineOptions>, steps: Step[]) => drive(o, steps).logins.map((l) => l.context.helo);
    // A later EHLO replaces the name; one refused as malformed (a space, a control byte) does not.
    expect(helo(secure, [`EHLO first.test\r\nEHLO [192.0.2.7]\r\nEHLO bad name\r\nEHLO bad\x01\r\n${login}`])).toEqual(['[192.0.2.7]']);
    expect(helo(secure, [`EHLO ${'h'.repeat(256)}\r\nEHLO ${'h'.repeat(255)}\r\n${login}`])).toEqual(['h'.repeat(255)]);
    // RFC 3207 §4.2: the plaintext EHLO is forgotten with the rest; the one after TLS counts.
    expect(helo({}, ['EHLO plain.test\r\nSTARTTLS\r\n', tls, `EHLO secure.test\r\n${login}`])).toEqual(['secure.test']);
    // HELO after EHLO replaces the name, and AUTH then needs a new EHLO.
    expect(helo(secure, [`EHLO a.test\r\nHELO b.test\r\n${login}EHLO c.test\r\n${login}`])).toEqual(['c.test']);
  });

  it('PLAIN without an initial response gets "334 " and then the response', () => {
    const { lines, logins } = drive(secure, ['EHLO c\r\nAUTH PLAIN\r\n', `${b64('\0alice\0pw')}\r\n`]);
    expect(lines).toContain('334 ');
    expect(logins).toHaveLength(1);
  });

  it('LOGIN asks for user and password', () => {
    const { lines, logins } = drive(secure, ['EHLO c\r\nAUTH LOGIN\r\n', `${b64('alice')}\r\n`, `${b64('pw')}\r\n`]);
    expect(lines).toContain(`334 ${b64('Username:')}`);
    expect(lines).toContain(`334 ${b64('Password:')}`);
    expect(logins[0]!.credentials.password.toString()).toBe('pw');
  });

  it('* cancels with 501, invalid base64 and a malformed PLAIN get 501, unknown mechanisms 504', () => {
    const { lines, logins } = drive(secure, [
      'EHLO c\r\nAUTH PLAIN\r\n', '*\r\n',
      'AUTH PLAIN %%%%\r\n',
      `AUTH PLAIN ${b64('alice\0pw')}\r\n`,
      'AUTH CRAM-MD5\r\n',
      `AUTH PLAIN ${b64('bob\0alice\0pw')}\r\n`,
    ]);
    expect(logins).toEqual([]);
    expect(lines.slice(-5)).toEqual([
      '501 5.0.0 Authentication cancelled',
      '501 5.5.2 Cannot decode response',
      '501 5.5.2 Cannot decode response',
      '504 5.5.4 Unrecognized authentication type',
      '501 5.5.4 Authorization identity not supported',
    ]);
  });

  it('a failed exchange leaves no state: a new AUTH starts clean', () => {
    const { logins } = drive(secure, ['EHLO c\r\nAUTH LOGIN\r\n', `${b64('mallory')}\r\n`, '*\r\n', `AUTH PLAIN ${b64('\0alice\0pw')}\r\n`]);
    expect(logins).toHaveLength(1);
    expect(logins[0]!.credentials.user.toString()).toBe('alice');
  });
});

describe('SMTP machine: before AUTH, errors and results', () => {
  const secure = { tlsMode: 'implicit' as const };

  it('MAIL, RCPT, DATA and BDAT get 530; XCLIENT and XFORWARD are unknown', () => {
    const { lines } = drive(secure, ['MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nBDAT 10 LAST\r\nXCLIENT ADDR=1.2.3.4\r\nXFORWARD ADDR=1.2.3.4\r\n']);
    expect(lines.slice(1)).toEqual([
      ...Array(4).fill('530 5.7.0 Authentication required'),
      '500 5.5.2 Command not recognized',
      '500 5.5.2 Command not recognized',
    ]);
  });

  it('after maxBadCommands errors, even pipelined, 421 and close', () => {
    const { lines, closes } = drive({ maxBadCommands: 3 }, ['FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n']);
    expect(lines.slice(1)).toEqual(['500 5.5.2 Command not recognized', '500 5.5.2 Command not recognized', '500 5.5.2 Command not recognized', '421 4.7.0 mx.test Too many errors; closing connection']);
    expect(closes).toEqual(['too-many-errors']);
  });

  it('an ordinary command over 512 octets closes the connection; an AUTH line up to the SASL bound is read', () => {
    const tooLong = drive(secure, [`NOOP ${'x'.repeat(600)}\r\n`]);
    expect(tooLong.lines.slice(-2)).toEqual(['500 5.5.2 Line too long', '421 4.7.0 mx.test Too many errors; closing connection']);
    expect(tooLong.closes).toEqual(['protocol-error']);
    const long = `AUTH PLAIN ${b64(`\0alice\0${'p'.repeat(900)}`)}\r\n`;
    expect(drive(secure, ['EHLO c\r\n', long]).logins).toHaveLength(1);
  });

  it('a SASL response over the RFC 4954 bound closes the connection', () => {
    const { closes, logins } = drive(secure, ['EHLO c\r\nAUTH PLAIN\r\n', `${'A'.repeat(12_292)}\r\n`]);
    expect(logins).toEqual([]);
    expect(closes).toEqual(['protocol-error']);
  });

  it('a line beyond every bound closes the connection', () => {
    const { closes } = drive(secure, ['A'.repeat(20_000)]);
    expect(closes).toEqual(['protocol-error']);
  });

  it('limited: 454 4.7.0 with the retry time, then 421 and close; never 535', () => {
    const { text, closes } = drive(secure, [`EHLO c\r\nAUTH PLAIN ${b64('\0a\0b')}\r\n`, result({ kind: 'limited', retryAfterSec: 42 })]);
    expect(text).toMatch(/454 4\.7\.0 Too many login attempts; try again in 42 seconds\r\n421 4\.7\.0 mx\.test closing connection\r\n$/);
    expect(text).not.toMatch(/^535/m);
    expect(closes).toEqual(['limited']);
  });

  it('unavailable: 454 and the session goes on; rejected: the backend reply, up to maxAuthAttempts', () => {
    const auth = `AUTH PLAIN ${b64('\0a\0b')}\r\n`;
    const { lines, closes } = drive({ ...secure, maxAuthAttempts: 2 }, [
      `EHLO c\r\n${auth}`, result({ kind: 'unavailable' }),
      auth, result({ kind: 'rejected', reply: Buffer.from('535 5.7.8 nope\r\n') }),
      auth, result({ kind: 'invalid-user' }),
    ]);
    expect(lines.slice(-4)).toEqual([
      '454 4.7.0 Temporary authentication failure; try again later',
      '535 5.7.8 nope',
      '535 5.7.8 Authentication credentials invalid',
      '421 4.7.0 mx.test Too many failed logins; closing connection',
    ]);
    expect(closes).toEqual(['too-many-failures']);
  });

  it('commands pipelined behind AUTH are kept raw for the backend', () => {
    const m = smtp.createMachine(opts(secure));
    m.start();
    const effects = m.push(Buffer.from(`EHLO c\r\nAUTH PLAIN ${b64('\0a\0b')}\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n`));
    expect(effects.filter((e) => e.type === 'login')).toHaveLength(1);
    expect(m.takeBuffered().toString()).toBe('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n');
  });

  it('QUIT says 221 and closes; goodbyes are 421', () => {
    expect(drive({}, ['QUIT\r\n']).closes).toEqual(['logout']);
    const m = smtp.createMachine(opts());
    expect(m.goodbye('timeout')).toMatch(/^421 4\.4\.2 /);
    expect(m.goodbye('shutdown')).toMatch(/^421 4\.3\.2 /);
  });
});

describe('SMTP machine: channel-binding and other unreplayable mechanisms are never offered (CVE-2026-33603)', () => {
  const HOSTILE = ['PIPELINING', 'AUTH PLAIN LOGIN SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 GS2-KRB5-PLUS GSS-SPNEGO GSSAPI EXTERNAL', 'AUTH=SCRAM-SHA-256-PLUS', 'SIZE 1000'];
  const secure = { tlsMode: 'implicit' as const, backendCapabilities: HOSTILE };

  it('EHLO (implicit TLS, and after STARTTLS) offers AUTH PLAIN LOGIN only', () => {
    expect(drive(secure, ['EHLO c\r\n']).lines.slice(1)).toEqual(['250-mx.test', '250-PIPELINING', '250-SIZE 1000', '250 AUTH PLAIN LOGIN']);
    const { text, lines } = drive({ backendCapabilities: HOSTILE }, ['EHLO c\r\nSTARTTLS\r\n', tls, 'EHLO c\r\n']);
    expect(lines.at(-1)).toBe('250 AUTH PLAIN LOGIN');
    expect(text).not.toMatch(/PLUS|SCRAM|GSS|EXTERNAL/);
  });

  it('AUTH with any of them is 504, with or without an initial response; no login', () => {
    const mechs = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'scram-sha-256-plus', 'SCRAM-SHA-256', 'GS2-KRB5-PLUS', 'GSS-SPNEGO', 'EXTERNAL'];
    const { lines, logins } = drive({ ...secure, maxBadCommands: 20 }, [`EHLO c\r\n${mechs.map((m, i) => `AUTH ${m}${i % 2 ? ` ${b64('p=tls-exporter,,n=alice,r=abc')}` : ''}\r\n`).join('')}`]);
    expect(logins).toEqual([]);
    expect(lines.slice(-mechs.length)).toEqual(mechs.map(() => '504 5.5.4 Unrecognized authentication type'));
  });
});

describe('SMTP machine: hostile EHLO names never become the login\'s name (nginx CVE-2026-28753)', () => {
  const secure = { tlsMode: 'implicit' as const, maxBadCommands: 20 };
  const login = `AUTH PLAIN ${b64('\0alice\0pw')}\r\n`;
  const helo = (steps: string) => drive(secure, [steps]).logins.map((l) => l.context.helo);

  it.each(HOSTILE_EHLO_NAMES)('%s: refused, the earlier valid name stays', (_, name) => {
    expect(helo(`EHLO good.test\r\nEHLO ${name}\r\n${login}`)).toEqual(['good.test']);
  });

  it('"+", "=", brackets and other printable ASCII pass as written: XCLIENT xtext-encodes them (client-info.ts)', () => {
    expect(helo(`EHLO pc+1=[x]\\"<a>\r\n${login}`)).toEqual(['pc+1=[x]\\"<a>']);
  });
});
