// Unit tests for the POP3 pre-login machine, driven with bytes through the protocol
// descriptor's factory. Byte streams run twice (one chunk, byte by byte). Pure: no sockets.
import { describe, expect, it } from 'vitest';
import { POP3_MAX_LINE_BYTES, SASL_MAX_TOKEN_BYTES } from '../../src/bounds.js';
import { pop3 } from '../../src/protocols/pop3/index.js';
import type { LoginResult } from '../../src/protocols/protocol.js';
import { b64 } from '../helpers/codec.js';
import { capaOf, creds, machineDriver, normalise, result, secure, type Step, tls } from '../helpers/machine-driver.js';

const { opts, drive } = machineDriver(pop3);

const context = { tag: '' };

describe('POP3 machine: greeting and CAPA', () => {
  it('greets with +OK and no APOP timestamp', () => {
    const effects = pop3.createMachine(opts()).start();
    expect(effects).toEqual([{ type: 'send', data: expect.stringMatching(/^\+OK [^\r<>]*\r\n$/) }]);
  });

  it('before TLS with requireTls: CAPA shows STLS but neither USER nor SASL, and never PIPELINING', () => {
    const { text } = drive({}, ['CAPA\r\n']);
    expect(capaOf(text)).toEqual(['CAPA', 'STLS', 'RESP-CODES', 'AUTH-RESP-CODE']);
    expect(text).toMatch(/^\+OK [^\r]*\r\n(?:[^\r]*\r\n)*\.\r\n$/);
  });

  it('after STLS: USER and SASL PLAIN LOGIN, no STLS', () => {
    const { text } = drive({}, ['STLS\r\n', tls, 'capa\r\n']);
    expect(capaOf(text)).toEqual(['CAPA', 'USER', 'SASL PLAIN LOGIN', 'RESP-CODES', 'AUTH-RESP-CODE']);
  });

  it('implicit TLS and tls none without requireTls offer USER and SASL and no STLS', () => {
    for (const o of [secure, { tlsMode: 'none' as const, requireTls: false }]) {
      expect(capaOf(drive(o, ['CAPA\r\n']).text)).toEqual(['CAPA', 'USER', 'SASL PLAIN LOGIN', 'RESP-CODES', 'AUTH-RESP-CODE']);
    }
  });

  it('starttls without requireTls offers STLS and login together', () => {
    expect(capaOf(drive({ requireTls: false }, ['CAPA\r\n']).text)).toEqual(['CAPA', 'STLS', 'USER', 'SASL PLAIN LOGIN', 'RESP-CODES', 'AUTH-RESP-CODE']);
  });

  it('CAPA and QUIT with arguments are -ERR; lines ending in a bare LF are accepted', () => {
    const { lines, closes } = drive({}, ['CAPA x\r\nQUIT now\r\nCAPA\n']);
    expect(lines.slice(0, 2)).toEqual([expect.stringMatching(/^-ERR /), expect.stringMatching(/^-ERR /)]);
    expect(lines[2]).toMatch(/^\+OK Capability/);
    expect(closes).toEqual([]);
  });
});

describe('POP3 machine: TLS required', () => {
  it('USER, PASS and every AUTH form are refused without [AUTH] and produce no login', () => {
    const { lines, logins, text } = drive({}, [
      'USER alice\r\n',
      'PASS secret\r\n',
      `AUTH PLAIN ${b64('\0alice\0secret')}\r\n`,
      'AUTH PLAIN\r\n',
      'AUTH\r\n',
    ]);
    expect(logins).toEqual([]);
    expect(lines).toHaveLength(5);
    for (const l of lines) expect(l).toBe('-ERR Plaintext authentication disallowed on non-secure connections; use STLS.');
    expect(text).not.toContain('[AUTH]');
    expect(text).not.toContain('+ ');
    expect(text).not.toMatch(/alice|secret/);
  });

  it('the refusals count toward maxBadCommands', () => {
    const { closes, lines } = drive({ maxBadCommands: 2 }, ['USER alice\r\nUSER bob\r\nCAPA\r\n']);
    expect(closes).toEqual(['too-many-errors']);
    expect(lines.at(-1)).toBe('-ERR Too many invalid commands; closing connection.');
    expect(lines.join('\n')).not.toContain('Capability');
  });

  it('without requireTls USER/PASS is allowed in the clear', () => {
    const { logins } = drive({ tlsMode: 'none', requireTls: false }, ['USER alice\r\nPASS secret\r\n']);
    expect(logins).toEqual([{ type: 'login', credentials: creds('USER', 'alice', 'secret'), context }]);
  });
});

describe('POP3 machine: STLS', () => {
  it('produces a startTls effect and discards everything pipelined behind it', () => {
    const injected = 'USER alice\r\nPASS secret\r\nCAPA\r\n';
    const { effects } = drive({}, [`STLS\r\n${injected}`, 'PASS secret\r\n', tls, 'QUIT\r\n']);
    expect(effects).toEqual([
      { type: 'send', data: '+OK Begin TLS negotiation now.\r\n' },
      { type: 'startTls', discarded: injected.length },
      { type: 'send', data: '+OK Logging out.\r\n' },
      { type: 'close', reason: 'logout' },
    ]);
  });

  it('keeps no plaintext for the TLS socket: nothing buffered after STLS or during the handshake', () => {
    const m = pop3.createMachine(opts());
    expect(m.push(Buffer.from('STLS\r\nUSER alice\r\nPA')).map((e) => e.type)).toEqual(['send', 'startTls']);
    expect(m.bufferedBytes).toBe(0);
    expect(m.push(Buffer.from('SS secret\r\n'))).toEqual([]);
    expect(m.bufferedBytes).toBe(0);
    expect(m.takeBuffered().length).toBe(0);
  });

  it('a USER given before STLS does not survive the handshake', () => {
    const { lines, logins } = drive({ requireTls: false }, ['USER mallory\r\nSTLS\r\n', tls, 'PASS secret\r\n']);
    expect(logins).toEqual([]);
    expect(lines).toEqual(['+OK Send your password.', '+OK Begin TLS negotiation now.', '-ERR Send USER first.']);
  });

  it('a half-sent line before STLS does not survive the handshake', () => {
    const { logins, lines } = drive({ requireTls: false }, ['STLS\r\nUSER alice\r\nPASS ', tls, 'secret\r\n']);
    expect(logins).toEqual([]);
    expect(lines.at(-1)).toBe('-ERR Unknown command.');
  });

  it('STLS twice, with arguments, on an implicit listener and on tls none is -ERR', () => {
    expect(drive({}, ['STLS\r\n', tls, 'STLS\r\n']).lines.at(-1)).toBe('-ERR TLS is already active.');
    expect(drive({}, ['STLS now\r\n']).lines).toEqual([expect.stringMatching(/^-ERR /)]);
    for (const o of [secure, { tlsMode: 'none' as const, requireTls: false }]) {
      const { effects } = drive(o, ['STLS\r\n']);
      expect(effects).toEqual([{ type: 'send', data: expect.stringMatching(/^-ERR /) }]);
    }
  });
});

describe('POP3 machine: USER/PASS', () => {
  it('USER then PASS gives one login effect with mechanism USER and an empty tag', () => {
    const { logins, lines } = drive(secure, ['USER alice\r\n', 'PASS secret\r\n']);
    expect(lines).toEqual(['+OK Send your password.']);
    expect(logins).toEqual([{ type: 'login', credentials: creds('USER', 'alice', 'secret'), context }]);
  });

  it('takes the rest of the line as raw bytes: spaces, 8-bit and control bytes are kept', () => {
    const { logins } = drive(secure, ['user al ice\xe9\r\npass  pass word \x01\r\n']);
    expect(logins.map((l) => l.credentials)).toEqual([creds('USER', 'al ice\xe9', ' pass word \x01')]);
  });

  it('a bare CR inside a line stays in the argument (the auth path and the replay refuse it)', () => {
    const { logins } = drive(secure, ['USER alice\r\nPASS pw\rUSER x\r\n']);
    expect(logins.map((l) => l.credentials.password.toString('latin1'))).toEqual(['pw\rUSER x']);
  });

  it('PASS without an accepted USER is -ERR and counts as a bad command', () => {
    const { lines, logins, closes } = drive({ ...secure, maxBadCommands: 2 }, ['PASS secret\r\nUSER\r\nPASS secret\r\n']);
    expect(logins).toEqual([]);
    expect(lines).toEqual(['-ERR Send USER first.', expect.stringMatching(/^-ERR Syntax/), '-ERR Too many invalid commands; closing connection.']);
    expect(closes).toEqual(['too-many-errors']);
  });

  it('a second USER replaces the first; an empty PASS is refused and forgets the user', () => {
    const { logins, lines } = drive(secure, ['USER mallory\r\nUSER alice\r\nPASS\r\nPASS x\r\nUSER alice\r\nPASS secret\r\n']);
    expect(logins.map((l) => l.credentials)).toEqual([creds('USER', 'alice', 'secret')]);
    expect(lines.slice(2, 4)).toEqual([expect.stringMatching(/^-ERR Syntax/), '-ERR Send USER first.']);
  });

  it('after a failed login PASS needs a new USER', () => {
    const reject: LoginResult = { kind: 'rejected', reply: Buffer.from('-ERR [AUTH] nope\r\n') };
    const { logins, lines } = drive(secure, ['USER alice\r\nPASS wrong\r\n', result(reject), 'PASS again\r\n']);
    expect(logins).toHaveLength(1);
    expect(lines.slice(-2)).toEqual(['-ERR [AUTH] nope', '-ERR Send USER first.']);
  });
});

describe('POP3 machine: AUTH', () => {
  const plain = (u: string, p: string) => creds('PLAIN', u, p);

  it('bare AUTH lists the mechanisms as a multi-line +OK response', () => {
    const { text } = drive(secure, ['AUTH\r\n']);
    expect(text).toMatch(/^\+OK [^\r]*\r\nPLAIN\r\nLOGIN\r\n\.\r\n$/);
  });

  it('PLAIN with an initial response logs in at once', () => {
    const { logins, text } = drive(secure, [`AUTH PLAIN ${b64('\0alice\0secret')}\r\n`]);
    expect(text).toBe('');
    expect(logins).toEqual([{ type: 'login', credentials: plain('alice', 'secret'), context }]);
  });

  it('PLAIN without an initial response sends "+ " and takes the next line', () => {
    const { logins, text } = drive(secure, ['auth plain\r\n', `${b64('alice\0alice\0pw')}\r\n`]);
    expect(text).toBe('+ \r\n');
    expect(logins.map((l) => l.credentials)).toEqual([plain('alice', 'pw')]);
  });

  it('"=" (an empty response) is not a valid PLAIN message', () => {
    for (const input of ['AUTH PLAIN =\r\n', 'AUTH PLAIN\r\n=\r\n']) {
      const { text, logins } = drive(secure, [input]);
      expect(logins).toEqual([]);
      expect(text).toMatch(/-ERR \[AUTH\] Authentication failed\.\r\n$/);
    }
  });

  it('"*" cancels with -ERR and the session goes on', () => {
    const { text, logins } = drive(secure, ['AUTH LOGIN\r\n*\r\nQUIT\r\n']);
    expect(logins).toEqual([]);
    expect(text).toBe(`+ ${b64('Username:')}\r\n-ERR Authentication cancelled.\r\n+OK Logging out.\r\n`);
  });

  it('invalid base64 is refused, as initial response and as a continuation line', () => {
    for (const input of ['AUTH PLAIN AGFsaWNl!AHB3\r\n', 'AUTH PLAIN\r\nAGFsaWNlAHB3ZA=\r\n']) {
      const { lines, logins, closes } = drive(secure, [input]);
      expect(logins).toEqual([]);
      expect(lines.at(-1)).toBe('-ERR Invalid SASL response.');
      expect(closes).toEqual([]);
    }
  });

  it('an unadvertised mechanism (CRAM-MD5, EXTERNAL, APOP) is refused', () => {
    const { lines, logins } = drive(secure, ['AUTH CRAM-MD5\r\nAUTH EXTERNAL =\r\nAUTH APOP\r\n']);
    expect(logins).toEqual([]);
    expect(lines).toEqual(Array(3).fill('-ERR Unsupported authentication mechanism.'));
  });

  it('APOP itself is an unknown command', () => {
    expect(drive(secure, ['APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n']).lines).toEqual(['-ERR Unknown command.']);
  });

  it('PLAIN with the wrong number of NULs is refused; acting for another user is refused', () => {
    for (const raw of ['alice\0secret', '\0alice\0sec\0ret', '\0\0secret']) {
      expect(drive(secure, [`AUTH PLAIN ${b64(raw)}\r\n`]).lines).toEqual(['-ERR [AUTH] Authentication failed.']);
    }
    const { lines, logins } = drive(secure, [`AUTH PLAIN ${b64('bob\0alice\0secret')}\r\n`]);
    expect(logins).toEqual([]);
    expect(lines).toEqual(['-ERR Authorization identity not supported.']);
  });

  it('LOGIN asks for the user name, then the password', () => {
    const { text, logins } = drive(secure, ['AUTH LOGIN\r\n', `${b64('alice')}\r\n`, `${b64('secret')}\r\n`]);
    expect(text).toBe(`+ ${b64('Username:')}\r\n+ ${b64('Password:')}\r\n`);
    expect(logins.map((l) => l.credentials)).toEqual([creds('LOGIN', 'alice', 'secret')]);
  });

  it('LOGIN with an initial response skips the user name prompt', () => {
    const { text, logins } = drive(secure, [`AUTH LOGIN ${b64('alice')}\r\n${b64('secret')}\r\n`]);
    expect(text).toBe(`+ ${b64('Password:')}\r\n`);
    expect(logins.map((l) => l.credentials)).toEqual([creds('LOGIN', 'alice', 'secret')]);
  });

  it('a cancelled exchange leaves no state, and AUTH drops a pending USER', () => {
    const { logins, lines } = drive(secure, [
      `USER mallory\r\nAUTH LOGIN\r\n${b64('mallory')}\r\n*\r\nPASS x\r\n`,
      `AUTH LOGIN\r\n${b64('alice')}\r\n${b64('pw')}\r\n`,
    ]);
    expect(lines).toContain('-ERR Send USER first.');
    expect(logins.map((l) => l.credentials)).toEqual([creds('LOGIN', 'alice', 'pw')]);
  });

  it('extra arguments or an empty mechanism are -ERR', () => {
    const { lines, logins } = drive(secure, ['AUTH PLAIN x y\r\nAUTH \r\nAUTH PLAIN \r\n']);
    expect(logins).toEqual([]);
    expect(lines).toEqual(Array(3).fill(expect.stringMatching(/^-ERR Syntax/)));
  });
});

describe('POP3 machine: line bounds', () => {
  it(`a command line of ${POP3_MAX_LINE_BYTES} octets is a normal (bad) command; one more closes`, () => {
    const ok = drive(secure, [`X${'a'.repeat(POP3_MAX_LINE_BYTES - 1)}\r\nQUIT\r\n`]);
    expect(ok.lines).toEqual(['-ERR Unknown command.', '+OK Logging out.']);
    const long = drive(secure, [`USER ${'a'.repeat(POP3_MAX_LINE_BYTES)}\r\nQUIT\r\n`]);
    expect(long.effects).toEqual([{ type: 'send', data: '-ERR Line too long.\r\n' }, { type: 'close', reason: 'protocol-error' }]);
  });

  it('an over-long line without CRLF closes as soon as it passes the bound', () => {
    const m = pop3.createMachine(opts(secure));
    expect(m.push(Buffer.alloc(POP3_MAX_LINE_BYTES, 0x61))).toEqual([]);
    expect(m.push(Buffer.from('a'))).toEqual([{ type: 'send', data: '-ERR Line too long.\r\n' }, { type: 'close', reason: 'protocol-error' }]);
    expect(m.bufferedBytes).toBe(0);
    expect(m.push(Buffer.from('\r\nQUIT\r\n'))).toEqual([]);
  });

  it('a SASL response may be longer than a command; the bound returns to the command bound after it', () => {
    const password = 'p'.repeat(900);
    const token = b64(`\0alice\0${password}`);
    expect(token.length).toBeGreaterThan(POP3_MAX_LINE_BYTES);
    const reject: LoginResult = { kind: 'rejected', reply: Buffer.from('-ERR [AUTH] no\r\n') };
    const { logins, effects } = drive(secure, ['AUTH PLAIN\r\n', `${token}\r\n`, result(reject), `X${'a'.repeat(POP3_MAX_LINE_BYTES)}\r\n`]);
    expect(logins.map((l) => l.credentials.password.toString())).toEqual([password]);
    expect(effects.at(-1)).toEqual({ type: 'close', reason: 'protocol-error' });
  });

  it(`a SASL response over ${SASL_MAX_TOKEN_BYTES} octets is -ERR and close`, () => {
    const { effects, logins } = drive(secure, ['AUTH PLAIN\r\n', `${'A'.repeat(SASL_MAX_TOKEN_BYTES + 4)}\r\nQUIT\r\n`]);
    expect(logins).toEqual([]);
    expect(normalise(effects)).toEqual([
      { type: 'send', data: '+ \r\n' },
      { type: 'send', data: '-ERR Line too long.\r\n' },
      { type: 'close', reason: 'protocol-error' },
    ]);
  });
});

describe('POP3 machine: error budget', () => {
  it('an unknown command is -ERR and does not echo client text', () => {
    const { text } = drive({}, ['FOOBAR secret\r\n\r\n']);
    expect(text).toBe('-ERR Unknown command.\r\n-ERR Unknown command.\r\n');
  });

  it('the tenth bad command gets a goodbye and close, also when all are pipelined in one chunk', () => {
    const nine = drive({}, ['FOO\r\n'.repeat(9)]);
    expect(nine.closes).toEqual([]);
    const { lines, closes, effects } = drive({}, ['NOOP\r\n'.repeat(15) + 'QUIT\r\n', 'CAPA\r\n']);
    expect(lines).toEqual([...Array(10).fill('-ERR Unknown command.'), '-ERR Too many invalid commands; closing connection.']);
    expect(closes).toEqual(['too-many-errors']);
    expect(effects.at(-1)).toEqual({ type: 'close', reason: 'too-many-errors' });
  });

  it('SASL failures count toward the budget', () => {
    const { closes, lines } = drive({ ...secure, maxBadCommands: 3 }, ['AUTH PLAIN\r\n*\r\nAUTH CRAM-MD5\r\nAUTH PLAIN !!\r\nCAPA\r\n']);
    expect(closes).toEqual(['too-many-errors']);
    expect(lines.at(-1)).toBe('-ERR Too many invalid commands; closing connection.');
    expect(lines.join('\n')).not.toContain('Capability');
  });
});

describe('POP3 machine: login results', () => {
  const login = 'USER alice\r\nPASS pw\r\n';
  const rejectedReply = Buffer.from('-ERR [AUTH] backend says no\r\n');
  const rejected: LoginResult = { kind: 'rejected', reply: rejectedReply };

  it('rejected: the backend reply is forwarded as-is and pipelined commands then run', () => {
    const { effects } = drive(secure, [`${login}CAPA\r\n`, result(rejected)]);
    expect(effects.map((e) => e.type)).toEqual(['send', 'login', 'send', 'send']);
    expect((effects[2] as { data: Buffer }).data).toBe(rejectedReply);
    expect(String((effects[3] as { data: string }).data)).toMatch(/^\+OK Capability/);
  });

  it('rejected: the client may retry until maxAuthAttempts, then goodbye and close', () => {
    const steps: Step[] = [];
    for (let i = 0; i < 3; i++) steps.push(login, result(rejected));
    steps.push(login);
    const { logins, lines, closes } = drive(secure, steps);
    expect(logins).toHaveLength(3);
    expect(lines.slice(-2)).toEqual(['-ERR [AUTH] backend says no', '-ERR Too many failed logins; closing connection.']);
    expect(closes).toEqual(['too-many-failures']);
  });

  it('invalid-user counts as a failure with a generic [AUTH] reply', () => {
    const { lines, closes } = drive({ ...secure, maxAuthAttempts: 1 }, [login, result({ kind: 'invalid-user' })]);
    expect(lines.slice(1)).toEqual(['-ERR [AUTH] Authentication failed.', '-ERR Too many failed logins; closing connection.']);
    expect(closes).toEqual(['too-many-failures']);
  });

  it('limited: -ERR [SYS/TEMP] with the retry seconds, then close, never [AUTH]', () => {
    const { text, effects } = drive(secure, [`${login}CAPA\r\n`, result({ kind: 'limited', retryAfterSec: 1234 }), 'QUIT\r\n']);
    expect(text).toBe('+OK Send your password.\r\n-ERR [SYS/TEMP] Too many login attempts; try again in 1234 seconds.\r\n');
    expect(effects.at(-1)).toEqual({ type: 'close', reason: 'limited' });
    expect(effects.filter((e) => e.type === 'close')).toHaveLength(1);
  });

  it('unavailable: -ERR [SYS/TEMP], the session stays open and no attempt is used up', () => {
    const steps: Step[] = [];
    for (let i = 0; i < 4; i++) steps.push(`AUTH PLAIN ${b64('\0alice\0pw')}\r\n`, result({ kind: 'unavailable' }));
    steps.push('QUIT\r\n');
    const { lines, closes } = drive({ ...secure, maxAuthAttempts: 2 }, steps);
    expect(lines).toEqual([...Array(4).fill('-ERR [SYS/TEMP] Mail server temporarily unavailable; try again later.'), '+OK Logging out.']);
    expect(closes).toEqual(['logout']);
  });

  it('bytes behind a login wait in the reader and are handed over raw by takeBuffered', () => {
    const m = pop3.createMachine(opts(secure));
    expect(m.push(Buffer.from('USER alice\r\nPASS pw\r\nSTAT\r\nRETR 1\r\nLI')).map((e) => e.type)).toEqual(['send', 'login']);
    expect(m.push(Buffer.from('ST\r\n'))).toEqual([]);
    expect(m.takeBuffered().toString()).toBe('STAT\r\nRETR 1\r\nLIST\r\n');
    expect(m.bufferedBytes).toBe(0);
  });
});

describe('POP3 machine: QUIT and goodbye', () => {
  it('QUIT answers +OK and closes; later bytes are ignored', () => {
    const { effects } = drive({}, ['QUIT\r\nCAPA\r\n', 'CAPA\r\n']);
    expect(effects).toEqual([{ type: 'send', data: '+OK Logging out.\r\n' }, { type: 'close', reason: 'logout' }]);
  });

  it('goodbye lines are -ERR [SYS/TEMP] and differ by reason', () => {
    const m = pop3.createMachine(opts());
    expect(m.goodbye('timeout')).toMatch(/^-ERR \[SYS\/TEMP\] [^\r]*\r\n$/);
    expect(m.goodbye('shutdown')).toMatch(/^-ERR \[SYS\/TEMP\] [^\r]*\r\n$/);
    expect(m.goodbye('timeout')).not.toBe(m.goodbye('shutdown'));
  });
});

describe('POP3 machine: channel-binding and other unreplayable mechanisms are never offered (CVE-2026-33603)', () => {
  const HOSTILE = ['USER', 'TOP', 'UIDL', 'SASL PLAIN SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 GS2-KRB5-PLUS GSS-SPNEGO GSSAPI EXTERNAL', 'SCRAM-SHA-256-PLUS'];
  const o = { ...secure, backendCapabilities: HOSTILE };

  it('CAPA (before and after STLS) and bare AUTH list only PLAIN and LOGIN', () => {
    const { text } = drive(o, ['CAPA\r\nAUTH\r\n']);
    expect(capaOf(text).filter((l) => /^SASL /.test(l))).toEqual(['SASL PLAIN LOGIN']);
    expect(text).toMatch(/\r\n\+OK [^\r]*\r\nPLAIN\r\nLOGIN\r\n\.\r\n$/);
    expect(text).not.toMatch(/PLUS|SCRAM|GSS|EXTERNAL/);
    const starttls = drive({ backendCapabilities: HOSTILE }, ['CAPA\r\nSTLS\r\n', tls, 'CAPA\r\n']).text;
    expect(starttls).not.toMatch(/PLUS|SCRAM|GSS|EXTERNAL/);
    expect(starttls).toMatch(/\r\nSASL PLAIN LOGIN\r\n/);
  });

  it('AUTH with any of them is refused, with or without an initial response; no login', () => {
    const mechs = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'scram-sha-256-plus', 'SCRAM-SHA-256', 'GS2-KRB5-PLUS', 'GSS-SPNEGO', 'EXTERNAL'];
    const { lines, logins } = drive({ ...o, maxBadCommands: 20 }, [mechs.map((m, i) => `AUTH ${m}${i % 2 ? ` ${b64('p=tls-exporter,,n=alice,r=abc')}` : ''}\r\n`).join('')]);
    expect(logins).toEqual([]);
    expect(lines).toEqual(mechs.map(() => '-ERR Unsupported authentication mechanism.'));
  });
});
