// Unit tests for the pre-login lists that follow the backend (IMAP CAPABILITY, POP3 CAPA) and
// for identity the client tries to claim (PROXY lines, XCLIENT, XOIP), through the IMAP and
// POP3 machines. Byte streams run twice (one chunk, byte by byte). Pure: no sockets.
import { describe, expect, it } from 'vitest';
import { imap } from '../../src/protocols/imap/index.js';
import { pop3 } from '../../src/protocols/pop3/index.js';
import { capaOf, capsLine, creds, machineDriver, secure, tls } from '../helpers/machine-driver.js';

const imapDriver = machineDriver(imap);
const pop3Driver = machineDriver(pop3);

const context = { tag: '' };

describe('IMAP machine: capabilities that match the backend', () => {
  /** Dovecot 2.3's own pre-login list, as probed from it. */
  const DOVECOT = ['IMAP4rev1', 'SASL-IR', 'LOGIN-REFERRALS', 'ID', 'ENABLE', 'IDLE', 'LITERAL+', 'STARTTLS', 'AUTH=PLAIN', 'AUTH=LOGIN'];

  it('mirrors the backend minus what mailgate owns, before and after TLS', () => {
    const before = capsLine(imapDriver.drive({ backendCapabilities: DOVECOT }, ['a CAPABILITY\r\n']).text);
    expect(before).toEqual(['IMAP4rev1', 'SASL-IR', 'LITERAL+', 'ID', 'LOGIN-REFERRALS', 'ENABLE', 'IDLE', 'STARTTLS', 'LOGINDISABLED']);
    const after = capsLine(imapDriver.drive({ backendCapabilities: DOVECOT }, ['a STARTTLS\r\n', tls, 'b CAPABILITY\r\n']).text);
    expect(after).toEqual(['IMAP4rev1', 'SASL-IR', 'LITERAL+', 'ID', 'LOGIN-REFERRALS', 'ENABLE', 'IDLE', 'AUTH=PLAIN', 'AUTH=LOGIN']);
  });

  it('the greeting carries the same list as CAPABILITY', () => {
    const m = imap.createMachine(imapDriver.opts({ backendCapabilities: DOVECOT }));
    const greeting = String((m.start()[0] as { data: string }).data);
    const { text } = imapDriver.drive({ backendCapabilities: DOVECOT }, ['a CAPABILITY\r\n']);
    expect(/\[CAPABILITY ([^\]]*)\]/.exec(greeting)?.[1]?.split(' ')).toEqual(capsLine(text));
  });

  it("never passes on the backend's STARTTLS, AUTH= (but for the token mechanisms mailgate relays), LOGINDISABLED, LANGUAGE, UTF8=, UNAUTHENTICATE, vendor or malformed tokens", () => {
    const backend = ['IMAP4rev1', 'LOGINDISABLED', 'AUTH=XOAUTH2', 'AUTH=GSSAPI', 'STARTTLS', 'LANGUAGE', 'UTF8=ACCEPT', 'UNAUTHENTICATE', 'XLIST', 'X-GM-EXT-1', 'IDLE]', 'MOVE', 'THREAD=REFERENCES', 'APPENDLIMIT=35651584'];
    const caps = capsLine(imapDriver.drive({ tlsMode: 'implicit', backendCapabilities: backend }, ['a CAPABILITY\r\n']).text);
    // XOAUTH2 is relayed to the backend, which alone checks the token, so it is offered when the backend offers it.
    expect(caps).toEqual(['IMAP4rev1', 'SASL-IR', 'ID', 'MOVE', 'THREAD=REFERENCES', 'APPENDLIMIT=35651584', 'AUTH=PLAIN', 'AUTH=LOGIN', 'AUTH=XOAUTH2']);
  });

  it('literal forms follow the backend: LITERAL+, else LITERAL-, else none; unknown backend: LITERAL+', () => {
    const lit = (backend: string[]) => capsLine(imapDriver.drive({ tlsMode: 'implicit', backendCapabilities: backend }, ['a CAPABILITY\r\n']).text).filter((c) => c.startsWith('LITERAL'));
    expect(lit(['IMAP4rev1', 'LITERAL+', 'LITERAL-'])).toEqual(['LITERAL+']);
    expect(lit(['IMAP4rev1', 'LITERAL-'])).toEqual(['LITERAL-']);
    expect(lit(['IMAP4rev1'])).toEqual([]);
    expect(lit([])).toEqual(['LITERAL+']);
  });

  it('a LITERAL- backend: our parser still takes a non-synchronising literal before login', () => {
    const { logins, text } = imapDriver.drive({ tlsMode: 'implicit', backendCapabilities: ['IMAP4rev1', 'LITERAL-'] }, ['a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n']);
    expect(text).toBe('');
    expect(logins).toHaveLength(1);
  });

  it('revisions follow the backend: IMAP4rev2 is added, a rev2-only backend loses IMAP4rev1', () => {
    const rev = (backend: string[]) => capsLine(imapDriver.drive({ tlsMode: 'implicit', backendCapabilities: backend }, ['a CAPABILITY\r\n']).text).filter((c) => c.startsWith('IMAP4'));
    expect(rev(['IMAP4rev1', 'IMAP4rev2'])).toEqual(['IMAP4rev1', 'IMAP4rev2']);
    expect(rev(['IMAP4rev2', 'IDLE'])).toEqual(['IMAP4rev2']);
    expect(rev(['IDLE'])).toEqual(['IMAP4rev1']);
  });

  it('a backend token repeated or in another case is listed once', () => {
    const caps = capsLine(imapDriver.drive({ tlsMode: 'implicit', backendCapabilities: ['IMAP4rev1', 'IDLE', 'idle', 'ID', 'sasl-ir'] }, ['a CAPABILITY\r\n']).text);
    expect(caps).toEqual(['IMAP4rev1', 'SASL-IR', 'ID', 'IDLE', 'AUTH=PLAIN', 'AUTH=LOGIN']);
  });
});

describe('IMAP machine: identity spoofing', () => {
  it('a PROXY line on a listener without proxyProtocol is an ordinary bad command', () => {
    const { text, logins, effects } = imapDriver.drive({}, ['PROXY TCP4 6.6.6.6 127.0.0.1 4000 143\r\na NOOP\r\n']);
    expect(text).toMatch(/^PROXY BAD [^\r]*\r\na OK NOOP completed\.\r\n$/);
    expect(text).not.toContain('6.6.6.6');
    expect(logins).toEqual([]);
    expect(effects.every((e) => e.type === 'send')).toBe(true);
  });
});

describe('POP3 machine: CAPA that matches the backend', () => {
  /** Dovecot 2.3's own pre-login CAPA, as probed from it. */
  const DOVECOT = ['CAPA', 'TOP', 'UIDL', 'RESP-CODES', 'PIPELINING', 'AUTH-RESP-CODE', 'STLS', 'USER', 'SASL PLAIN LOGIN'];

  it('mirrors the backend minus what mailgate owns, before and after STLS', () => {
    expect(capaOf(pop3Driver.drive({ backendCapabilities: DOVECOT }, ['CAPA\r\n']).text)).toEqual(['CAPA', 'TOP', 'UIDL', 'PIPELINING', 'STLS', 'RESP-CODES', 'AUTH-RESP-CODE']);
    expect(capaOf(pop3Driver.drive({ backendCapabilities: DOVECOT }, ['STLS\r\n', tls, 'CAPA\r\n']).text)).toEqual(['CAPA', 'TOP', 'UIDL', 'PIPELINING', 'USER', 'SASL PLAIN LOGIN', 'RESP-CODES', 'AUTH-RESP-CODE']);
  });

  it('keeps arguments as written; never passes on XCLIENT, SASL (only its token mechanisms), UTF8, LANG, IMPLEMENTATION, dot-led or control-laden lines', () => {
    const backend = ['EXPIRE 31 USER', 'LOGIN-DELAY 900', 'XCLIENT', 'SASL XOAUTH2 GSSAPI', 'STLS', 'UTF8 USER', 'LANG', 'IMPLEMENTATION Dovecot 2.3', '.TOP', 'UIDL\x1b[31m', 'TOP'];
    expect(capaOf(pop3Driver.drive(secure, ['CAPA\r\n']).text)).not.toContain('TOP');
    expect(capaOf(pop3Driver.drive({ ...secure, backendCapabilities: backend }, ['CAPA\r\n']).text)).toEqual([
      'CAPA', 'EXPIRE 31 USER', 'LOGIN-DELAY 900', 'TOP', 'USER', 'SASL PLAIN LOGIN XOAUTH2', 'RESP-CODES', 'AUTH-RESP-CODE',
    ]);
  });

  it('with PIPELINING advertised, pipelined USER PASS and a command behind them behave as sent one by one', () => {
    const { logins, lines } = pop3Driver.drive({ ...secure, backendCapabilities: DOVECOT }, ['USER alice\r\nPASS secret\r\nSTAT\r\n']);
    expect(lines).toEqual(['+OK Send your password.']);
    expect(logins).toEqual([{ type: 'login', credentials: creds('USER', 'alice', 'secret'), context }]);
  });
});

describe('POP3 machine: identity spoofing', () => {
  it('XCLIENT, XOIP and a PROXY line are unknown commands that never log in or echo', () => {
    const { lines, logins } = pop3Driver.drive(secure, ['XCLIENT ADDR=6.6.6.6 PORT=1\r\nXOIP 6.6.6.6\r\nPROXY TCP4 6.6.6.6 127.0.0.1 4000 110\r\n']);
    expect(lines).toEqual(['-ERR Unknown command.', '-ERR Unknown command.', '-ERR Unknown command.']);
    expect(logins).toEqual([]);
  });
});
