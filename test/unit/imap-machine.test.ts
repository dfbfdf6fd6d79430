// Unit tests for the IMAP pre-auth state machine, driven with bytes through the protocol
// descriptor's factory. Byte streams run twice (one chunk, byte by byte). Pure: no sockets.
import { describe, expect, it } from 'vitest';
import { IMAP_MAX_LINE_BYTES, SASL_MAX_TOKEN_BYTES } from '../../src/bounds.js';
import { imap } from '../../src/protocols/imap/index.js';
import type { LoginResult, MachineOptions } from '../../src/protocols/protocol.js';
import { b64 } from '../helpers/codec.js';
import { capsLine, machineDriver, normalise, result, secure, type Step, tls } from '../helpers/machine-driver.js';
import { oauthBearer } from '../helpers/oauth.js';

const { opts, drive } = machineDriver(imap);

describe('IMAP machine: greeting and capabilities', () => {
  it('greets with CAPABILITY, never PREAUTH, and advertises STARTTLS LOGINDISABLED before TLS', () => {
    const m = imap.createMachine(opts());
    const [greeting, ...rest] = m.start();
    expect(rest).toEqual([]);
    expect(greeting).toMatchObject({ type: 'send' });
    const text = String((greeting as { data: string }).data);
    expect(text).toMatch(/^\* OK \[CAPABILITY IMAP4rev1 [^\]]*\] .*\r\n$/);
    expect(text).not.toContain('PREAUTH');
    expect(text).toContain(' STARTTLS');
    expect(text).toContain('LOGINDISABLED');
    expect(text).not.toContain('AUTH=');
  });

  it('CAPABILITY before TLS with requireTls: STARTTLS and LOGINDISABLED, no AUTH=', () => {
    const { text } = drive({}, ['a CAPABILITY\r\n']);
    const caps = capsLine(text);
    expect(caps).toEqual(expect.arrayContaining(['IMAP4rev1', 'STARTTLS', 'LOGINDISABLED']));
    expect(caps.filter((c) => c.startsWith('AUTH='))).toEqual([]);
    expect(text).toMatch(/\r\na OK [^\r]*\r\n$/);
  });

  it('after tlsStarted: AUTH=PLAIN AUTH=LOGIN SASL-IR, no STARTTLS, no LOGINDISABLED', () => {
    const { text } = drive({}, ['a STARTTLS\r\n', tls, 'b CAPABILITY\r\n']);
    const caps = capsLine(text);
    expect(caps).toEqual(expect.arrayContaining(['AUTH=PLAIN', 'AUTH=LOGIN', 'SASL-IR']));
    expect(caps).not.toContain('STARTTLS');
    expect(caps).not.toContain('LOGINDISABLED');
  });

  it('implicit TLS is secure from the start; tls none without requireTls offers AUTH= and no STARTTLS', () => {
    for (const o of [opts({ tlsMode: 'implicit' }), opts({ tlsMode: 'none', requireTls: false })]) {
      const text = String((imap.createMachine(o).start()[0] as { data: string }).data);
      expect(text).toContain('AUTH=PLAIN');
      expect(text).not.toContain('STARTTLS');
      expect(text).not.toContain('LOGINDISABLED');
    }
  });

  it('CAPABILITY and NOOP with arguments are BAD', () => {
    const { text } = drive({}, ['a CAPABILITY x\r\nb NOOP x\r\n']);
    expect(text).toMatch(/^a BAD [^\r]*\r\nb BAD [^\r]*\r\n$/);
  });
});

describe('IMAP machine: TLS required', () => {
  it('LOGIN and AUTHENTICATE before TLS are refused and produce no login effect', () => {
    const { text, logins } = drive({}, [
      'a LOGIN alice secret\r\n',
      `b AUTHENTICATE PLAIN ${b64('\0alice\0secret')}\r\n`,
      'c AUTHENTICATE PLAIN\r\n',
    ]);
    expect(logins).toEqual([]);
    expect(text.split('\r\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^a NO \[PRIVACYREQUIRED\] /),
      expect.stringMatching(/^b NO \[PRIVACYREQUIRED\] /),
      expect.stringMatching(/^c NO \[PRIVACYREQUIRED\] /),
    ]);
    expect(text).not.toContain('alice');
  });

  it('a LOGIN literal before TLS gets NO instead of "+", so the password is never sent in the clear', () => {
    const { text, logins } = drive({}, ['a LOGIN {5}\r\n', 'b NOOP\r\n']);
    expect(logins).toEqual([]);
    expect(text).not.toContain('+ ');
    expect(text.split('\r\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^a NO \[PRIVACYREQUIRED\] /),
      'b OK NOOP completed.',
    ]);
  });

  it('other commands with literals still get "+" before TLS', () => {
    const { text } = drive({}, ['a ID ({4}\r\n', 'name NIL)\r\n']);
    expect(text).toBe('+ Ready for literal data.\r\n* ID NIL\r\na OK ID completed.\r\n');
  });

  it('without requireTls a plaintext LOGIN is allowed', () => {
    const { logins } = drive({ tlsMode: 'none', requireTls: false }, ['a LOGIN alice secret\r\n']);
    expect(logins).toHaveLength(1);
  });
});

describe('IMAP machine: tags', () => {
  it('a tag with characters RFC 9051 excludes is never echoed', () => {
    for (const bad of ['*', '%a', 'a\\b', 'a+b', '\xe9t']) {
      const { text } = drive({}, [Buffer.from(`${bad} NOOP\r\n`, 'latin1').toString('latin1')]);
      expect(text).toBe('* BAD Invalid tag\r\n');
    }
  });

  it('STARTTLS on a listener without STARTTLS says it is not available', () => {
    const { text } = drive({ tlsMode: 'none', requireTls: false }, ['a STARTTLS\r\n']);
    expect(text).toBe('a BAD STARTTLS is not available here\r\n');
  });
});

describe('IMAP machine: STARTTLS', () => {
  it('produces a startTls effect and discards everything pipelined behind it', () => {
    const injected = 'b LOGIN alice secret\r\n';
    const { effects } = drive({}, [`a STARTTLS\r\n${injected}`, 'c LOGIN alice secret\r\n', tls, 'd NOOP\r\n']);
    expect(effects).toEqual([
      { type: 'send', data: 'a OK Begin TLS negotiation now.\r\n' },
      { type: 'startTls', discarded: injected.length },
      { type: 'send', data: 'd OK NOOP completed.\r\n' },
    ]);
  });

  it('keeps no plaintext for the TLS socket: nothing buffered after STARTTLS or during the handshake', () => {
    const m = imap.createMachine(opts());
    const effects = m.push(Buffer.from('a STARTTLS\r\nb LOGIN alice secret\r\nc NO'));
    expect(effects.map((e) => e.type)).toEqual(['send', 'startTls']);
    expect(m.bufferedBytes).toBe(0);
    expect(m.push(Buffer.from('OP\r\nd LOGIN alice secret\r\n'))).toEqual([]);
    expect(m.bufferedBytes).toBe(0);
    expect(m.takeBuffered().length).toBe(0);
  });

  it('a half-sent command before STARTTLS does not survive the handshake', () => {
    const { effects } = drive({}, ['a STARTTLS\r\nb LOGIN {6}\r\n', tls, 'secret\r\n']);
    expect(effects.filter((e) => e.type === 'login')).toEqual([]);
    expect(normalise(effects).at(-1)).toEqual({ type: 'send', data: 'secret BAD Missing command\r\n' });
  });

  it('STARTTLS twice, with arguments, on an implicit listener and on tls none is BAD', () => {
    expect(drive({}, ['a STARTTLS\r\n', tls, 'b STARTTLS\r\n']).text).toMatch(/\r\nb BAD [^\r]*\r\n$/);
    expect(drive({}, ['a STARTTLS x\r\n']).text).toMatch(/^a BAD /);
    for (const o of [{ tlsMode: 'implicit' as const }, { tlsMode: 'none' as const, requireTls: false }]) {
      const { effects } = drive(o, ['a STARTTLS\r\n']);
      expect(effects).toHaveLength(1);
      expect(effects[0]).toMatchObject({ type: 'send', data: expect.stringMatching(/^a BAD /) });
    }
  });
});

describe('IMAP machine: LOGIN', () => {
  const creds = (user: string, password: string) => ({
    mechanism: 'IMAP-LOGIN',
    user: Buffer.from(user, 'latin1'),
    password: Buffer.from(password, 'latin1'),
  });

  it.each([
    ['atoms', 'a LOGIN alice secret\r\n', 'alice', 'secret'],
    ['quoted strings', 'a LOGIN "al ice" "p\\"w\\\\d"\r\n', 'al ice', 'p"w\\d'],
    ['non-sync literals', 'a LOGIN {5+}\r\nalice {8+}\r\nse\r\ncret\r\n', 'alice', 'se\r\ncret'],
  ])('with %s gives one login effect with the right credentials', (_, input, user, password) => {
    const { logins, text } = drive({ tlsMode: 'implicit' }, [input]);
    expect(text).toBe('');
    expect(logins).toEqual([{ type: 'login', credentials: creds(user, password), context: { tag: 'a' } }]);
  });

  it('with sync literals sends "+" for each and then logs in', () => {
    const { logins, text } = drive({ tlsMode: 'implicit' }, ['a LOGIN {5}\r\nalice {6}\r\nsecret\r\n']);
    expect(text).toBe('+ Ready for literal data.\r\n+ Ready for literal data.\r\n');
    expect(logins).toEqual([{ type: 'login', credentials: creds('alice', 'secret'), context: { tag: 'a' } }]);
  });

  it('with the wrong number of arguments or a list is BAD', () => {
    const { text, logins } = drive({ tlsMode: 'implicit' }, ['a LOGIN alice\r\nb LOGIN a b c\r\nc LOGIN (a) b\r\n']);
    expect(logins).toEqual([]);
    expect(text).toMatch(/^a BAD [^\r]*\r\nb BAD [^\r]*\r\nc BAD [^\r]*\r\n$/);
  });
});

describe('IMAP machine: AUTHENTICATE', () => {
  const plain = (user: string, password: string) => ({ mechanism: 'PLAIN', user: Buffer.from(user), password: Buffer.from(password) });
  
  it('PLAIN with SASL-IR logs in at once', () => {
    const { logins, text } = drive(secure, [`a AUTHENTICATE PLAIN ${b64('\0alice\0secret')}\r\n`]);
    expect(text).toBe('');
    expect(logins).toEqual([{ type: 'login', credentials: plain('alice', 'secret'), context: { tag: 'a' } }]);
  });

  it('PLAIN without initial response sends an empty continuation, then takes the line', () => {
    const { logins, text } = drive(secure, ['a authenticate plain\r\n', `${b64('alice\0alice\0pw')}\r\n`]);
    expect(text).toBe('+ \r\n');
    expect(logins.map((l) => l.credentials)).toEqual([plain('alice', 'pw')]);
  });

  it('"=" (empty response) is not a valid PLAIN message', () => {
    for (const input of ['a AUTHENTICATE PLAIN =\r\n', 'a AUTHENTICATE PLAIN\r\n=\r\n']) {
      const { text, logins } = drive(secure, [input]);
      expect(logins).toEqual([]);
      expect(text).toMatch(/a NO \[AUTHENTICATIONFAILED\] [^\r]*\r\n$/);
    }
  });

  it('"*" cancels with a tagged BAD and the session goes on', () => {
    const { text, logins } = drive(secure, ['a AUTHENTICATE PLAIN\r\n*\r\nb NOOP\r\n']);
    expect(logins).toEqual([]);
    expect(text).toBe('+ \r\na BAD Authentication cancelled.\r\nb OK NOOP completed.\r\n');
  });

  it('invalid base64 is refused, as initial response and as a continuation line', () => {
    for (const input of ['a AUTHENTICATE PLAIN AGFsaWNl!AHB3\r\n', 'a AUTHENTICATE PLAIN\r\nAGFsaWNlAHB3ZA=\r\n']) {
      const { text, logins } = drive(secure, [input]);
      expect(logins).toEqual([]);
      expect(text).toMatch(/a (BAD|NO) [^\r]*\r\n$/);
    }
  });

  it('PLAIN with one or three NULs, or an empty authcid, is refused', () => {
    for (const raw of ['alice\0secret', '\0alice\0sec\0ret', '\0\0secret']) {
      const { text, logins } = drive(secure, [`a AUTHENTICATE PLAIN ${b64(raw)}\r\n`]);
      expect(logins).toEqual([]);
      expect(text).toBe('a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n');
    }
  });

  it('PLAIN acting for another user is refused', () => {
    const { text, logins } = drive(secure, [`a AUTHENTICATE PLAIN ${b64('bob\0alice\0secret')}\r\n`]);
    expect(logins).toEqual([]);
    expect(text).toMatch(/^a NO \[AUTHORIZATIONFAILED\] /);
  });

  it('an unadvertised mechanism is refused', () => {
    const { text, logins } = drive(secure, ['a AUTHENTICATE CRAM-MD5\r\nb AUTHENTICATE EXTERNAL =\r\n']);
    expect(logins).toEqual([]);
    expect(text).toMatch(/^a NO \[CANNOT\] [^\r]*\r\nb NO \[CANNOT\] [^\r]*\r\n$/);
  });

  it('LOGIN asks for user name then password', () => {
    const { text, logins } = drive(secure, ['a AUTHENTICATE LOGIN\r\n', `${b64('alice')}\r\n`, `${b64('secret')}\r\n`]);
    expect(text).toBe(`+ ${b64('Username:')}\r\n+ ${b64('Password:')}\r\n`);
    expect(logins.map((l) => l.credentials)).toEqual([{ ...plain('alice', 'secret'), mechanism: 'LOGIN' }]);
  });

  it('LOGIN with SASL-IR skips the user name prompt', () => {
    const { text, logins } = drive(secure, [`a AUTHENTICATE LOGIN ${b64('alice')}\r\n${b64('secret')}\r\n`]);
    expect(text).toBe(`+ ${b64('Password:')}\r\n`);
    expect(logins[0]?.credentials.user.toString()).toBe('alice');
  });

  it('a cancelled exchange leaves no state: the next one starts from scratch', () => {
    const { logins } = drive(secure, [
      `a AUTHENTICATE LOGIN\r\n${b64('mallory')}\r\n*\r\n`,
      `b AUTHENTICATE LOGIN\r\n${b64('alice')}\r\n${b64('pw')}\r\n`,
    ]);
    expect(logins.map((l) => [l.credentials.user.toString(), l.context.tag])).toEqual([['alice', 'b']]);
  });

  it('a quoted initial response or extra arguments are BAD', () => {
    const { text, logins } = drive(secure, ['a AUTHENTICATE PLAIN "AGEAYg=="\r\nb AUTHENTICATE PLAIN x y\r\nc AUTHENTICATE\r\n']);
    expect(logins).toEqual([]);
    expect(text).toMatch(/^a BAD [^\r]*\r\nb BAD [^\r]*\r\nc BAD [^\r]*\r\n$/);
  });
});

describe('IMAP machine: SASL response length', () => {
  const tokens = { tlsMode: 'implicit' as const, backendCapabilities: ['IMAP4rev1', 'AUTH=OAUTHBEARER'] };

  /** An OAUTHBEARER message whose base64 form is `length` octets (a multiple of 4). */
  function message(length: number): { token: string; line: string } {
    const token = 'x'.repeat((length / 4) * 3 - oauthBearer('alice@example.org', '').length);
    const line = b64(oauthBearer('alice@example.org', token));
    expect(line).toHaveLength(length);
    return { token, line };
  }

  it.each([12_000, SASL_MAX_TOKEN_BYTES])('a continuation line of %i octets, longer than a command line, is the SASL response', (length) => {
    expect(length).toBeGreaterThan(IMAP_MAX_LINE_BYTES);
    const { token, line } = message(length);
    const { text, logins } = drive(tokens, ['a AUTHENTICATE OAUTHBEARER\r\n', `${line}\r\n`]);
    expect(text).toBe('+ \r\n');
    expect(logins.map((l) => [l.credentials.user.toString(), l.credentials.password.toString(), l.context.tag])).toEqual([['alice@example.org', token, 'a']]);
  });

  it(`a continuation line over ${SASL_MAX_TOKEN_BYTES} octets is BAD, BYE and close, with no login`, () => {
    const { effects, logins } = drive(tokens, ['a AUTHENTICATE OAUTHBEARER\r\n', `${'A'.repeat(SASL_MAX_TOKEN_BYTES + 1)}\r\nb NOOP\r\n`]);
    expect(logins).toEqual([]);
    expect(effects).toEqual([
      { type: 'send', data: '+ \r\n' },
      { type: 'send', data: '* BAD Line too long\r\n* BYE Too many invalid commands.\r\n' },
      { type: 'close', reason: 'protocol-error' },
    ]);
  });

  it('the answer to a challenge relayed from the backend has the same bound', () => {
    const answer = 'QUFB'.repeat(SASL_MAX_TOKEN_BYTES / 4);
    const start = [`a AUTHENTICATE OAUTHBEARER ${message(100).line}\r\n`, (m) => m.loginChallenge(b64('{"status":"invalid_token"}'))] satisfies Step[];
    expect(drive(tokens, [...start, `${answer}\r\n`]).effects.at(-1)).toEqual({ type: 'loginResponse', response: answer });
    expect(drive(tokens, [...start, `A${answer}\r\n`]).closes).toEqual(['protocol-error']);
  });
});

describe('IMAP machine: error budget', () => {
  it('an unknown command is a tagged BAD that does not echo client text', () => {
    const { text } = drive({}, ['x1 FOOBAR secret\r\n']);
    expect(text).toMatch(/^x1 BAD [^\r]*\r\n$/);
    expect(text).not.toContain('FOOBAR');
    expect(text).not.toContain('secret');
  });

  it('the tenth bad command gets BYE and close, also when all are pipelined in one chunk', () => {
    const nine = drive({}, [Array.from({ length: 9 }, (_, i) => `t${i} FOO\r\n`).join('')]);
    expect(nine.closes).toEqual([]);
    const all = Array.from({ length: 15 }, (_, i) => `t${i} FOO\r\n`).join('') + 'z LOGIN a b\r\n';
    const { text, closes, effects } = drive({}, [all, 'y NOOP\r\n']);
    expect(text.match(/ BAD /g)).toHaveLength(10);
    expect(text).toMatch(/t9 BAD [^\r]*\r\n\* BYE [^\r]*\r\n$/);
    expect(closes).toEqual(['too-many-errors']);
    expect(effects.at(-1)).toEqual({ type: 'close', reason: 'too-many-errors' });
  });

  it('refused logins and SASL failures count toward the budget; maxBadCommands is honoured', () => {
    const { text, closes } = drive({ maxBadCommands: 3 }, ['a LOGIN x y\r\nb AUTHENTICATE PLAIN\r\nc FOO\r\nd NOOP\r\n']);
    expect(closes).toEqual(['too-many-errors']);
    expect(text).toMatch(/^a NO \[PRIVACYREQUIRED\] [^\r]*\r\nb NO \[PRIVACYREQUIRED\] [^\r]*\r\nc BAD [^\r]*\r\n\* BYE /);
    expect(text).not.toContain('d OK');
  });

  it('a fatal parser error closes at once with BAD and BYE', () => {
    const { text, closes } = drive({}, [`a LOGIN {99999+}\r\nb NOOP\r\n`]);
    expect(text).toMatch(/^a BAD [^\r]*\r\n\* BYE [^\r]*\r\n$/);
    expect(closes).toEqual(['protocol-error']);
  });
});

describe('IMAP machine: login results', () => {
  const secure = { tlsMode: 'implicit' as const };
  const rejected = (tag: string): LoginResult => ({ kind: 'rejected', reply: Buffer.from(`${tag} NO [AUTHENTICATIONFAILED] backend says no\r\n`) });

  it('rejected: the backend reply is forwarded and pipelined commands then run', () => {
    const { effects } = drive(secure, ['a LOGIN alice wrong\r\nb NOOP\r\n', result(rejected('a'))]);
    expect(normalise(effects)).toEqual([
      { type: 'login', credentials: expect.anything(), context: { tag: 'a' } },
      { type: 'send', data: 'a NO [AUTHENTICATIONFAILED] backend says no\r\n' },
      { type: 'send', data: 'b OK NOOP completed.\r\n' },
    ]);
  });

  it('rejected: the client may retry until maxAuthAttempts, then BYE and close', () => {
    const steps: Step[] = [];
    for (const t of ['a', 'b', 'c']) steps.push(`${t} LOGIN alice wrong\r\n`, result(rejected(t)));
    steps.push('d LOGIN alice right\r\n');
    const { logins, text, closes } = drive(secure, steps);
    expect(logins.map((l) => l.context.tag)).toEqual(['a', 'b', 'c']);
    expect(text).toMatch(/c NO \[AUTHENTICATIONFAILED\] backend says no\r\n\* BYE [^\r]*\r\n$/);
    expect(closes).toEqual(['too-many-failures']);
  });

  it('invalid-user counts as a failure with a generic reply', () => {
    const { text, closes } = drive({ ...secure, maxAuthAttempts: 1 }, ['a LOGIN x y\r\n', result({ kind: 'invalid-user' })]);
    expect(text).toBe('a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n* BYE Too many failed logins.\r\n');
    expect(closes).toEqual(['too-many-failures']);
  });

  it('limited: NO [UNAVAILABLE] with the retry seconds, BYE and close, never AUTHENTICATIONFAILED', () => {
    const { text, closes, effects } = drive(secure, ['a LOGIN alice pw\r\nb NOOP\r\n', result({ kind: 'limited', retryAfterSec: 1234 }), 'c NOOP\r\n']);
    expect(text).toMatch(/^a NO \[UNAVAILABLE\] [^\r]*\b1234 seconds[^\r]*\r\n\* BYE [^\r]*\r\n$/);
    expect(text).not.toContain('AUTHENTICATIONFAILED');
    expect(closes).toEqual(['limited']);
    expect(effects.at(-1)).toEqual({ type: 'close', reason: 'limited' });
  });

  it('unavailable: NO [UNAVAILABLE], the session stays open and does not count a failure', () => {
    const steps: Step[] = [];
    for (const t of ['a', 'b', 'c', 'd']) steps.push(`${t} LOGIN alice pw\r\n`, result({ kind: 'unavailable' }));
    steps.push('e NOOP\r\n');
    const { text, closes } = drive({ ...secure, maxAuthAttempts: 2 }, steps);
    expect(text).toMatch(/^a NO \[UNAVAILABLE\] /);
    expect(text.match(/NO \[UNAVAILABLE\]/g)).toHaveLength(4);
    expect(text).toMatch(/e OK NOOP completed\.\r\n$/);
    expect(closes).toEqual([]);
  });

  it('bytes behind a login wait in the parser and are handed over raw by takeBuffered', () => {
    const m = imap.createMachine(opts(secure));
    const effects = m.push(Buffer.from('a LOGIN alice pw\r\nb SELECT INBOX\r\nc NO'));
    expect(effects.map((e) => e.type)).toEqual(['login']);
    expect(m.push(Buffer.from('OP\r\n'))).toEqual([]);
    expect(m.takeBuffered().toString()).toBe('b SELECT INBOX\r\nc NOOP\r\n');
    expect(m.bufferedBytes).toBe(0);
  });
});

describe('IMAP machine: LOGOUT, ID, NOOP, goodbye', () => {
  it('LOGOUT answers BYE then OK and closes; later bytes are ignored', () => {
    const { effects } = drive({}, ['a LOGOUT\r\nb NOOP\r\n', 'c NOOP\r\n']);
    expect(effects).toEqual([
      { type: 'send', data: '* BYE Logging out.\r\na OK Logout completed.\r\n' },
      { type: 'close', reason: 'logout' },
    ]);
  });

  it('ID is answered locally and the client fields are never echoed', () => {
    const { text } = drive({}, ['a ID ("x-originating-ip" "6.6.6.6" "name" "evil")\r\nb ID NIL\r\nc ID\r\nd ID "x"\r\n']);
    expect(text).toMatch(/^\* ID NIL\r\na OK [^\r]*\r\n\* ID NIL\r\nb OK [^\r]*\r\nc BAD [^\r]*\r\nd BAD [^\r]*\r\n$/);
    expect(text).not.toContain('6.6.6.6');
  });

  it("the client's ID name reaches the login's context (for the login history), cleaned and cut", () => {
    const named = drive(secure, ['a ID ("vendor" "x" "NAME" "Thunder|bird\x01 115")\r\nb LOGIN u p\r\n']);
    expect(named.logins[0]!.context).toEqual({ tag: 'b', clientName: 'Thunderbird 115' });
    const long = drive(secure, [`a ID ("name" "${'n'.repeat(300)}")\r\nb LOGIN u p\r\n`]);
    expect(long.logins[0]!.context.clientName).toBe('n'.repeat(64));
    for (const id of ['NIL', '("name" NIL)', '("version" "1")', '("name" "|")']) {
      expect(drive(secure, [`a ID ${id}\r\nb LOGIN u p\r\n`]).logins[0]!.context).toEqual({ tag: 'b' });
    }
  });

  it('NOOP is answered OK', () => {
    expect(drive({}, ['a NOOP\r\n']).text).toBe('a OK NOOP completed.\r\n');
  });

  it('goodbye lines are untagged BYE', () => {
    const m = imap.createMachine(opts());
    expect(m.goodbye('timeout')).toMatch(/^\* BYE [^\r]*\r\n$/);
    expect(m.goodbye('shutdown')).toMatch(/^\* BYE [^\r]*\r\n$/);
    expect(m.goodbye('timeout')).not.toBe(m.goodbye('shutdown'));
  });
});

describe('IMAP machine: LITERAL- enforced where advertised (RFC 7888 §4)', () => {
  const minusOnly = { ...secure, backendCapabilities: ['IMAP4rev1', 'LITERAL-', 'AUTH=PLAIN'] };
  const TOOBIG = 'a BAD [TOOBIG] Non-synchronizing literal over 4096 octets\r\n* BYE [TOOBIG] Literal too big; closing.\r\n';
  const login = (n: number) => `a LOGIN {5+}\r\nalice {${n}+}\r\n${'p'.repeat(n)}\r\nb NOOP\r\n`;

  it('a backend offering only LITERAL-: advertised, {4096+} logs in, {4097+} is BAD [TOOBIG], BYE [TOOBIG] and close', () => {
    expect(capsLine(drive(minusOnly, ['a CAPABILITY\r\n']).text).filter((c) => c.startsWith('LITERAL'))).toEqual(['LITERAL-']);
    const ok = drive(minusOnly, [login(4096)]);
    expect(ok.logins.map((l) => l.credentials.password.length)).toEqual([4096]);
    const big = drive(minusOnly, [login(4097)]);
    expect(big.text).toBe(TOOBIG);
    expect(big.closes).toEqual(['protocol-error']);
    expect(big.logins).toEqual([]);
  });

  it('the bytes sent with a refused literal never run, before TLS as after', () => {
    const inner = 'b LOGOUT\r\nc NOOP\r\n'.repeat(300).slice(0, 4097);
    for (const o of [minusOnly, { ...minusOnly, tlsMode: 'starttls' as const }]) {
      const { text, closes } = drive(o, [`a LOGIN {4097+}\r\n${inner}\r\nd NOOP\r\n`]);
      expect(text).toBe(TOOBIG);
      expect(closes).toEqual(['protocol-error']);
    }
  });

  it('synchronizing literals over 4096 octets still get "+" under LITERAL-', () => {
    const { text, logins } = drive(minusOnly, ['a LOGIN {5}\r\n', 'alice {5000}\r\n', `${'p'.repeat(5000)}\r\n`]);
    expect(text).toBe('+ Ready for literal data.\r\n+ Ready for literal data.\r\n');
    expect(logins).toHaveLength(1);
  });

  it.each([
    ['LITERAL+ only', ['IMAP4rev1', 'LITERAL+']],
    ['LITERAL+ and LITERAL-', ['IMAP4rev1', 'LITERAL+', 'LITERAL-']],
    ['IMAP4rev2 with LITERAL+', ['IMAP4rev2', 'LITERAL+']],
    ['an unknown backend', []],
    ['IMAP4rev1 without either (none advertised; {n+} still read, as before)', ['IMAP4rev1']],
  ])('%s: no 4096-octet cap, a {4097+} password logs in', (_, caps) => {
    const { logins, closes } = drive({ ...secure, backendCapabilities: caps }, [login(4097)]);
    expect(logins).toHaveLength(1);
    expect(closes).toEqual([]);
  });

  it.each([['IMAP4rev2 alone'], ['IMAP4rev1 and IMAP4rev2']])('%s without LITERAL+: the cap holds (RFC 9051 §4.3 makes LITERAL- part of IMAP4rev2)', (which) => {
    const caps = which === 'IMAP4rev2 alone' ? ['IMAP4rev2'] : ['IMAP4rev1', 'IMAP4rev2'];
    expect(capsLine(drive({ ...secure, backendCapabilities: caps }, ['a CAPABILITY\r\n']).text).filter((c) => c.startsWith('LITERAL'))).toEqual([]);
    expect(drive({ ...secure, backendCapabilities: caps }, [login(4096)]).logins).toHaveLength(1);
    expect(drive({ ...secure, backendCapabilities: caps }, [login(4097)]).text).toBe(TOOBIG);
  });
});

describe('IMAP machine: channel-binding and other unreplayable mechanisms are never offered (CVE-2026-33603)', () => {
  const HOSTILE = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'IDLE', 'AUTH=PLAIN', 'AUTH=SCRAM-SHA-256-PLUS', 'AUTH=SCRAM-SHA-1-PLUS', 'AUTH=SCRAM-SHA-256', 'AUTH=SCRAM-SHA-1', 'AUTH=GS2-KRB5-PLUS', 'AUTH=GSS-SPNEGO', 'AUTH=GSSAPI', 'AUTH=EXTERNAL', 'AUTH=CRAM-MD5', 'SCRAM-SHA-256-PLUS', 'CHANNEL-BINDING=TLS-EXPORTER'];
  const MECHS = /^(?:PLAIN|LOGIN|OAUTHBEARER|XOAUTH2)$/;

  it.each([
    ['the greeting', (o: Partial<MachineOptions>) => drive(o, [], true).text],
    ['CAPABILITY', (o: Partial<MachineOptions>) => drive(o, ['a CAPABILITY\r\n']).text],
    ['CAPABILITY after STARTTLS', (o: Partial<MachineOptions>) => drive(o, ['a STARTTLS\r\n', tls, 'b CAPABILITY\r\n']).text],
  ])('%s lists only our mechanisms, none with -PLUS, whatever the backend lists', (_, text) => {
    const sets: Partial<MachineOptions>[] = [{ backendCapabilities: HOSTILE }, { ...secure, backendCapabilities: HOSTILE }, { tlsMode: 'none', requireTls: false, backendCapabilities: HOSTILE }];
    for (const o of sets) {
      const caps = text(o).match(/\[CAPABILITY ([^\]]*)\]|\* CAPABILITY ([^\r]*)/g)!.join(' ').split(/[\s\]]+/);
      expect(caps.filter((c) => /PLUS|SCRAM|GSS|EXTERNAL|CRAM|CHANNEL/i.test(c))).toEqual([]);
      for (const c of caps.filter((t) => t.startsWith('AUTH='))) expect(c.slice(5)).toMatch(MECHS);
    }
  });

  it('AUTHENTICATE with any of them is NO [CANNOT], with or without an initial response; no login', () => {
    const mechs = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'scram-sha-256-plus', 'SCRAM-SHA-256', 'GSS-SPNEGO', 'GSSAPI', 'GS2-KRB5-PLUS', 'EXTERNAL'];
    const lines = mechs.map((m, i) => `t${i} AUTHENTICATE ${m}${i % 2 ? ` ${b64('p=tls-exporter,,n=alice,r=abc')}` : ''}\r\n`);
    const { text, logins } = drive({ ...secure, backendCapabilities: HOSTILE, maxBadCommands: 20 }, [lines.join('')]);
    expect(logins).toEqual([]);
    expect(text.split('\r\n').filter(Boolean)).toEqual(mechs.map((_, i) => expect.stringMatching(new RegExp(`^t${i} NO \\[CANNOT\\] `))));
  });
});
