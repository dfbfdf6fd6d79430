// Unit tests for the token mechanisms in the shared SASL module: OAUTHBEARER (RFC 7628) and
// XOAUTH2 messages, the exchange, what is offered, the relayed answer and wiping. Pure.
import { describe, expect, it } from 'vitest';
import { OAUTH_MAX_MESSAGE_BYTES, OAUTH_MAX_PAIRS, SASL_MAX_FIELD_BYTES } from '../../src/bounds.js';
import {
  decodeOAuth,
  isTokenLogin,
  offeredMechanisms,
  relayedResponse,
  SaslExchange,
  wipeCredentials,
  type Credentials,
} from '../../src/protocols/sasl.js';
import { b64 } from '../helpers/codec.js';
import { oauthBearer as bearer, xoauth2 } from '../helpers/oauth.js';

const raw = (s: string) => Buffer.from(s, 'latin1');
const TOKEN = 'ya29.a0Af-_~+/token==';

function decoded(mech: 'OAUTHBEARER' | 'XOAUTH2', message: string): Credentials {
  const r = decodeOAuth(mech, raw(message));
  if (typeof r === 'string') throw new Error(`refused: ${r}`);
  return r;
}

describe('decodeOAuth: OAUTHBEARER (RFC 7628 §3.1)', () => {
  it('takes the user from the gs2 authzid and the token from auth; the message stays whole', () => {
    const message = bearer('alice@example.org', TOKEN);
    const c = decoded('OAUTHBEARER', message);
    expect(c.mechanism).toBe('OAUTHBEARER');
    expect(c.user.toString()).toBe('alice@example.org');
    expect(c.password.toString()).toBe(TOKEN);
    expect(c.raw).toEqual(raw(message));
    expect(isTokenLogin(c)).toBe(true);
  });

  it('accepts the minimal form, the "y" flag, a lower-case scheme and several spaces', () => {
    expect(decoded('OAUTHBEARER', `n,a=bob,\x01auth=Bearer t\x01\x01`).password.toString()).toBe('t');
    expect(decoded('OAUTHBEARER', `y,a=bob,\x01auth=bearer  t\x01\x01`).password.toString()).toBe('t');
  });

  it('decodes =2C and =3D in the saslname (RFC 5801 §4); the raw message keeps them', () => {
    const c = decoded('OAUTHBEARER', bearer('a=2Cb=3Dc', 't'));
    expect(c.user.toString()).toBe('a,b=c');
    expect(c.raw!.toString()).toContain('a=a=2Cb=3Dc,');
  });

  it('keeps non-ASCII user names as their bytes', () => {
    const c = decoded('OAUTHBEARER', Buffer.from(bearer('jörg', 't'), 'utf8').toString('latin1'));
    expect(c.user.toString('utf8')).toBe('jörg');
  });

  it.each([
    ['no authzid (limits need a user; Dovecot refuses it too)', `n,,\x01auth=Bearer t\x01\x01`],
    ['empty authzid', `n,a=,\x01auth=Bearer t\x01\x01`],
    ['channel binding, which OAUTHBEARER lacks', `p=tls-unique,a=bob,\x01auth=Bearer t\x01\x01`],
    ['the non-standard gs2 flag', `F,n,a=bob,\x01auth=Bearer t\x01\x01`],
    ['a bad saslname escape', `n,a=b=41b,\x01auth=Bearer t\x01\x01`],
    ['no %x01 after the gs2 header', `n,a=bob,auth=Bearer t\x01\x01`],
    ['no final %x01', `n,a=bob,\x01auth=Bearer t\x01`],
    ['bytes after the end', `n,a=bob,\x01auth=Bearer t\x01\x01x`],
    ['an empty pair in the middle', `n,a=bob,\x01\x01auth=Bearer t\x01\x01`],
    ['no auth', `n,a=bob,\x01host=h\x01\x01`],
    ['another scheme', `n,a=bob,\x01auth=Basic dDp0\x01\x01`],
    ['a token with a space', `n,a=bob,\x01auth=Bearer t t\x01\x01`],
    ['an empty token', `n,a=bob,\x01auth=Bearer \x01\x01`],
    ['auth twice (the backend might read the other one)', `n,a=bob,\x01auth=Bearer t\x01auth=Bearer u\x01\x01`],
    ['auth twice in another case', `n,a=bob,\x01auth=Bearer t\x01AUTH=Bearer u\x01\x01`],
    ['a key that is not letters', `n,a=bob,\x01ho-st=h\x01auth=Bearer t\x01\x01`],
    ['a control byte in a value', `n,a=bob,\x01host=h\x00\x01auth=Bearer t\x01\x01`],
    ['too many pairs', `n,a=bob,\x01${'k=v\x01'.repeat(OAUTH_MAX_PAIRS)}auth=Bearer t\x01\x01`],
    ['nothing', ''],
  ])('refuses %s', (_why, message) => {
    expect(decodeOAuth('OAUTHBEARER', raw(message))).toBe('bad-oauth');
  });

  it('bounds the user name and the whole message', () => {
    expect(decodeOAuth('OAUTHBEARER', raw(bearer('u'.repeat(SASL_MAX_FIELD_BYTES + 1), 't')))).toBe('too-long');
    expect(typeof decodeOAuth('OAUTHBEARER', raw(bearer('u'.repeat(SASL_MAX_FIELD_BYTES), 't')))).toBe('object');
    const fits = bearer('bob', 'x'.repeat(OAUTH_MAX_MESSAGE_BYTES - bearer('bob', '').length));
    expect(decoded('OAUTHBEARER', fits).raw).toHaveLength(OAUTH_MAX_MESSAGE_BYTES);
    expect(decodeOAuth('OAUTHBEARER', raw(bearer('bob', 'x'.repeat(OAUTH_MAX_MESSAGE_BYTES))))).toBe('too-long');
  });
});

describe('decodeOAuth: XOAUTH2', () => {
  it('takes user and token', () => {
    const c = decoded('XOAUTH2', xoauth2('alice@example.org', TOKEN));
    expect([c.mechanism, c.user.toString(), c.password.toString()]).toEqual(['XOAUTH2', 'alice@example.org', TOKEN]);
    expect(c.raw!.toString('latin1')).toBe(xoauth2('alice@example.org', TOKEN));
  });

  it.each([
    ['no user', `auth=Bearer t\x01\x01`],
    ['an empty user', `user=\x01auth=Bearer t\x01\x01`],
    ['no auth', `user=bob\x01\x01`],
    ['another key', `user=bob\x01auth=Bearer t\x01host=h\x01\x01`],
    ['user twice', `user=bob\x01USER=alice\x01auth=Bearer t\x01\x01`],
    ['no final %x01', `user=bob\x01auth=Bearer t\x01`],
    ['a gs2 header', `n,a=bob,\x01auth=Bearer t\x01\x01`],
  ])('refuses %s', (_why, message) => {
    expect(decodeOAuth('XOAUTH2', raw(message))).toBe('bad-oauth');
  });
});

describe('the token exchange', () => {
  const BOTH = offeredMechanisms(['PLAIN', 'OAUTHBEARER', 'xoauth2']);

  it('offers the token mechanisms only when the backend lists them', () => {
    expect(offeredMechanisms([])).toEqual(['PLAIN', 'LOGIN']);
    expect(offeredMechanisms(['PLAIN', 'GSSAPI', 'XOAUTH2'])).toEqual(['PLAIN', 'LOGIN', 'XOAUTH2']);
    expect(BOTH).toEqual(['PLAIN', 'LOGIN', 'OAUTHBEARER', 'XOAUTH2']);
  });

  it('an unoffered token mechanism is an unknown mechanism', () => {
    expect(SaslExchange.start('OAUTHBEARER', b64(bearer('bob', 't')), offeredMechanisms(['XOAUTH2'])).step).toEqual({ kind: 'fail', reason: 'unknown-mechanism' });
  });

  it('with an initial response: done at once; without: an empty challenge, then done', () => {
    const now = SaslExchange.start('oauthbearer', b64(bearer('bob', 't')), BOTH).step;
    expect(now.kind === 'done' && now.credentials.user.toString()).toBe('bob');
    const { exchange, step } = SaslExchange.start('XOAUTH2', null, BOTH);
    expect(step).toEqual({ kind: 'challenge', text: '' });
    const later = exchange!.respond(b64(xoauth2('bob', 't')));
    expect(later.kind === 'done' && later.credentials.password.toString()).toBe('t');
  });

  it('cancel, bad base64, "=" and malformed messages fail', () => {
    const respond = (line: string) => SaslExchange.start('OAUTHBEARER', null, BOTH).exchange!.respond(line);
    expect(respond('*')).toEqual({ kind: 'fail', reason: 'cancelled' });
    expect(respond('bi!xYT1ib2IsAWF1dGg9QmVhcmVyIHQBAQ==')).toEqual({ kind: 'fail', reason: 'bad-base64' });
    expect(respond('=')).toEqual({ kind: 'fail', reason: 'bad-oauth' });
    expect(respond(b64('user=bob\x01auth=Bearer t\x01\x01'))).toEqual({ kind: 'fail', reason: 'bad-oauth' });
  });

  it('wipeCredentials zeroes the whole message, token included', () => {
    const step = SaslExchange.start('OAUTHBEARER', b64(bearer('bob', TOKEN)), BOTH).step;
    if (step.kind !== 'done') throw new Error('not done');
    const { raw: message, password: token } = step.credentials;
    wipeCredentials(step.credentials);
    expect(message!.every((b) => b === 0)).toBe(true);
    expect(token.every((b) => b === 0)).toBe(true);
  });

  it('password logins are not token logins', () => {
    expect(isTokenLogin({ mechanism: 'PLAIN', user: raw('a'), password: raw('b') })).toBe(false);
  });
});

describe('relayedResponse: the client answer to a backend challenge', () => {
  it.each([
    ['AQ==', 'AQ=='],
    ['', ''],
    ['*', '*'],
    ['=', '='],
    ['not base64!', '*'],
    ['AQ', '*'],
    ['AQ==\r\nA001 LOGOUT', '*'],
  ])('%j is relayed as %j', (line, relayed) => {
    expect(relayedResponse(line)).toBe(relayed);
  });
});
