// The token mechanisms (OAUTHBEARER, XOAUTH2) through the IMAP, POP3 and SMTP machines: offered
// only as the backend offers them, decoded into a login, and a backend's error challenge
// relayed with one client answer. Every script runs as one chunk and byte by byte. Pure.
import { describe, expect, it } from 'vitest';
import { imap } from '../../src/protocols/imap/index.js';
import { pop3 } from '../../src/protocols/pop3/index.js';
import type { MailProtocol } from '../../src/protocols/protocol.js';
import { smtp } from '../../src/protocols/smtp/index.js';
import { b64 } from '../helpers/codec.js';
import { oauthBearer, xoauth2 } from '../helpers/oauth.js';
import { machineDriver, result, tls, type Step } from '../helpers/machine-driver.js';

interface Case {
  protocol: MailProtocol;
  /** The backend's capability list offering both token mechanisms, as the probe returns it. */
  backend: string[];
  /** Without the token mechanisms. */
  passwordsOnly: string[];
  /** Client bytes before AUTH may be sent, and the command that lists mechanisms. */
  hello: string;
  starttls: string;
  listing: string;
  offered: RegExp;
  auth: (mech: string, initial?: string) => string;
  challenge: (text: string) => string;
  unknownMechanism: RegExp;
  malformed: RegExp;
  rejected: string;
}

const CASES: Record<string, Case> = {
  imap: {
    protocol: imap,
    backend: ['IMAP4rev1', 'SASL-IR', 'AUTH=PLAIN', 'AUTH=OAUTHBEARER', 'AUTH=XOAUTH2'],
    passwordsOnly: ['IMAP4rev1', 'SASL-IR', 'AUTH=PLAIN', 'AUTH=GSSAPI'],
    hello: '',
    starttls: 's STARTTLS\r\n',
    listing: 'l CAPABILITY\r\n',
    offered: / AUTH=PLAIN AUTH=LOGIN AUTH=OAUTHBEARER AUTH=XOAUTH2\r\n/,
    auth: (mech, initial) => `a AUTHENTICATE ${mech}${initial === undefined ? '' : ` ${initial}`}\r\n`,
    challenge: (text) => `+ ${text}\r\n`,
    unknownMechanism: /^a NO \[CANNOT\] /m,
    malformed: /^a NO \[AUTHENTICATIONFAILED\] /m,
    rejected: 'a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n',
  },
  pop3: {
    protocol: pop3,
    backend: ['TOP', 'SASL PLAIN LOGIN OAUTHBEARER XOAUTH2'],
    passwordsOnly: ['TOP', 'SASL PLAIN LOGIN GSSAPI'],
    hello: '',
    starttls: 'STLS\r\n',
    listing: 'CAPA\r\nAUTH\r\n',
    offered: /\r\nSASL PLAIN LOGIN OAUTHBEARER XOAUTH2\r\n[^]*\r\nPLAIN\r\nLOGIN\r\nOAUTHBEARER\r\nXOAUTH2\r\n\.\r\n$/,
    auth: (mech, initial) => `AUTH ${mech}${initial === undefined ? '' : ` ${initial}`}\r\n`,
    challenge: (text) => `+ ${text}\r\n`,
    unknownMechanism: /^-ERR Unsupported authentication mechanism\.\r\n/m,
    malformed: /^-ERR \[AUTH\] /m,
    rejected: '-ERR [AUTH] Authentication failed.\r\n',
  },
  smtp: {
    protocol: smtp,
    backend: ['PIPELINING', 'AUTH PLAIN LOGIN OAUTHBEARER XOAUTH2'],
    passwordsOnly: ['PIPELINING', 'AUTH PLAIN LOGIN GSSAPI'],
    hello: 'EHLO client.example.org\r\n',
    starttls: 'STARTTLS\r\n',
    listing: 'EHLO client.example.org\r\n',
    offered: /^250 AUTH PLAIN LOGIN OAUTHBEARER XOAUTH2\r\n/m,
    auth: (mech, initial) => `AUTH ${mech}${initial === undefined ? '' : ` ${initial}`}\r\n`,
    challenge: (text) => `334 ${text}\r\n`,
    unknownMechanism: /^504 5\.5\.4 /m,
    malformed: /^501 5\.5\.2 /m,
    rejected: '535 5.7.8 Authentication failed.\r\n',
  },
};

const TOKEN = 'ya29.A0ARrdaM-token_value~+/==';
const BEARER = b64(oauthBearer('Alice@example.org', TOKEN));
const XOAUTH2 = b64(xoauth2('alice@example.org', TOKEN));
/** Dovecot's error challenge: base64 of {"status":"invalid_token"}. */
const CHALLENGE = b64('{"status":"invalid_token"}');
const challenge = (text = CHALLENGE): Step => (m) => m.loginChallenge(text);

describe.each(Object.keys(CASES))('%s machine: token mechanisms', (name) => {
  const c = CASES[name]!;
  const { drive } = machineDriver(c.protocol, { tlsMode: 'implicit', backendCapabilities: c.backend });

  it('offers them only as the backend does, and only where a login is allowed', () => {
    expect(drive({}, [c.listing]).text).toMatch(c.offered);
    expect(drive({ tlsMode: 'starttls', requireTls: true }, [c.listing]).text).not.toMatch(/OAUTHBEARER|XOAUTH2/);
    expect(drive({ tlsMode: 'starttls', requireTls: true }, [c.starttls, tls, c.listing]).text).toMatch(c.offered);
    expect(drive({ backendCapabilities: c.passwordsOnly }, [c.listing]).text).not.toMatch(/OAUTHBEARER|XOAUTH2|GSSAPI/);
    expect(drive({ backendCapabilities: [] }, [c.listing]).text).not.toMatch(/OAUTHBEARER|XOAUTH2/);
  });

  it('an initial response becomes one login with the user, the token and the message unchanged', () => {
    const { logins } = drive({}, [c.hello, c.auth('OAUTHBEARER', BEARER)]);
    expect(logins).toHaveLength(1);
    const creds = logins[0]!.credentials;
    expect(creds.mechanism).toBe('OAUTHBEARER');
    expect(creds.user.toString()).toBe('Alice@example.org');
    expect(creds.password.toString()).toBe(TOKEN);
    expect(creds.raw?.toString('base64')).toBe(BEARER);
  });

  it('without an initial response: an empty challenge, then the message', () => {
    const { logins, text } = drive({}, [c.hello, c.auth('xoauth2'), `${XOAUTH2}\r\n`]);
    expect(text.endsWith(c.challenge(''))).toBe(true);
    expect(logins.map((l) => [l.credentials.mechanism, l.credentials.user.toString(), l.credentials.password.toString()])).toEqual([['XOAUTH2', 'alice@example.org', TOKEN]]);
  });

  it('a mechanism the backend does not offer is refused like any unknown one', () => {
    const { logins, text } = drive({ backendCapabilities: c.passwordsOnly }, [c.hello, c.auth('OAUTHBEARER', BEARER), c.auth('XOAUTH2', XOAUTH2)]);
    expect(logins).toEqual([]);
    expect(text.match(new RegExp(c.unknownMechanism.source, 'gm'))).toHaveLength(2);
  });

  it('a malformed message never reaches the backend', () => {
    const { logins, text } = drive({}, [c.hello, c.auth('OAUTHBEARER', b64(`n,,\x01auth=Bearer ${TOKEN}\x01\x01`))]);
    expect(logins).toEqual([]);
    expect(text).toMatch(c.malformed);
    expect(text).not.toContain(TOKEN);
  });

  it("relays the backend's error challenge and the client's one answer, then the final failure", () => {
    const { effects, text } = drive({}, [c.hello, c.auth('OAUTHBEARER', BEARER), challenge(), 'AQ==\r\n', result({ kind: 'rejected', reply: Buffer.from(c.rejected) })]);
    const kinds = effects.map((e) => e.type);
    expect(kinds.slice(-4)).toEqual(['login', 'send', 'loginResponse', 'send']);
    expect(effects.at(-2)).toEqual({ type: 'loginResponse', response: 'AQ==' });
    expect(text.endsWith(`${c.challenge(CHALLENGE)}${c.rejected}`)).toBe(true);
  });

  it('an answer pipelined before the challenge arrived is taken as the answer', () => {
    const { effects } = drive({}, [c.hello, `${c.auth('XOAUTH2', XOAUTH2)}\r\n`, challenge()]);
    expect(effects.at(-1)).toEqual({ type: 'loginResponse', response: '' });
  });

  it('an answer that is not base64 or "*" is relayed as a cancel; "*" as itself', () => {
    const answer = (line: string) => drive({}, [c.hello, c.auth('OAUTHBEARER', BEARER), challenge(), line]).effects.at(-1);
    expect(answer('AQ==\r\nnot base64\r\n')).toEqual({ type: 'loginResponse', response: 'AQ==' });
    expect(answer('not base64!\r\n')).toEqual({ type: 'loginResponse', response: '*' });
    expect(answer('*\r\n')).toEqual({ type: 'loginResponse', response: '*' });
  });

  it('an answer may be as long as a SASL response, longer than a command line', () => {
    const long = 'QUFB'.repeat(300);
    expect(drive({}, [c.hello, c.auth('OAUTHBEARER', BEARER), challenge(), `${long}\r\n`]).effects.at(-1)).toEqual({ type: 'loginResponse', response: long });
  });

  it('after the relay the session goes on: the failure counts and the next command is read', () => {
    const rejected = result({ kind: 'rejected', reply: Buffer.from(c.rejected) });
    const { logins } = drive({}, [c.hello, c.auth('OAUTHBEARER', BEARER), challenge(), 'AQ==\r\n', rejected, c.auth('XOAUTH2', XOAUTH2)]);
    expect(logins).toHaveLength(2);
  });

  it('loginChallenge outside a login does nothing', () => {
    expect(drive({}, [c.hello, challenge()]).effects.filter((e) => e.type !== 'send')).toEqual([]);
  });
});
