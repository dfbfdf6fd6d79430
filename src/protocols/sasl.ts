// The one SASL module (RFC 4422) for IMAP, POP3 and SMTP: strict base64, PLAIN (RFC 4616),
// LOGIN, and OAUTHBEARER (RFC 7628) / XOAUTH2 messages, as a small pure exchange.
// Pure: no sockets, no timers, no logging.
import { OAUTH_MAX_MESSAGE_BYTES, OAUTH_MAX_PAIRS, SASL_MAX_FIELD_BYTES, SASL_MAX_TOKEN_BYTES } from '../bounds.js';

export type OAuthMechanism = 'OAUTHBEARER' | 'XOAUTH2';
export type SaslMechanism = 'PLAIN' | 'LOGIN' | OAuthMechanism;
/** Password mechanisms: offered wherever a login is allowed. */
export const SASL_MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'LOGIN'];
/** Token mechanisms: only the backend can check a token, so they are offered only when the
 *  backend offers them (see offeredMechanisms). */
export const OAUTH_MECHANISMS: readonly OAuthMechanism[] = ['OAUTHBEARER', 'XOAUTH2'];

export interface Credentials {
  mechanism: SaslMechanism | 'USER' | 'IMAP-LOGIN';
  user: Buffer;
  /** The secret: the password, or for a token mechanism the bearer token (a view into `raw`). */
  password: Buffer;
  /** Token mechanisms only: the client's whole decoded message, relayed to the backend unchanged. */
  raw?: Buffer;
}

export type TokenCredentials = Credentials & { mechanism: OAuthMechanism; raw: Buffer };

export function isTokenLogin(c: Credentials): c is TokenCredentials {
  return c.raw !== undefined && (OAUTH_MECHANISMS as readonly string[]).includes(c.mechanism);
}

/** What a machine offers: the password mechanisms, plus the token mechanisms among
 *  `backendMechanisms` (the backend's own list: IMAP AUTH=, POP3 SASL, SMTP AUTH). An allow
 *  list, never the backend's list passed on: mailgate ends the client's TLS, so no
 *  channel-binding mechanism (SCRAM-*-PLUS, GS2-*-PLUS, CVE-2026-33603) and nothing it cannot
 *  replay (SCRAM, GSSAPI, EXTERNAL) is offered, whatever the backend lists. */
export function offeredMechanisms(backendMechanisms: readonly string[]): SaslMechanism[] {
  const theirs = new Set(backendMechanisms.map((m) => m.toUpperCase()));
  return [...SASL_MECHANISMS, ...OAUTH_MECHANISMS.filter((m) => theirs.has(m))];
}

export type SaslStep =
  | { kind: 'challenge'; text: string } // base64 text to send as the server challenge
  | { kind: 'done'; credentials: Credentials }
  | { kind: 'fail'; reason: SaslFailure };

export type SaslFailure = 'cancelled' | 'bad-base64' | 'bad-plain' | 'bad-oauth' | 'too-long' | 'authzid-unsupported' | 'unknown-mechanism';

/** The base64 alphabet (RFC 4648 §4) by character code: 1 for a member, "=" excluded. */
const B64_ALPHABET = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64_ALPHABET[c.charCodeAt(0)] = 1;

/** Strict base64 (RFC 4648 §4): whole groups of four alphabet characters, "=" only as the last
 *  one or two. One pass with constant work per character and no regular expression, so
 *  refusing crafted input costs what reading it costs: one client's malformed base64 must not
 *  slow anyone else's login (Dovecot CVE-2025-59028). */
export function isStrictBase64(text: string): boolean {
  const n = text.length;
  if (n % 4 !== 0) return false;
  const padded = n > 0 && text.charCodeAt(n - 1) === 0x3d;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 128 && B64_ALPHABET[c] === 1) continue;
    // "=" is padding: in one of the last two places, and then the last one is "=" too.
    if (c !== 0x3d || i < n - 2 || !padded) return false;
  }
  return true;
}

/** Strict base64: Node's decoder skips bad characters silently, so validate first.
 *  "=" is the empty response (RFC 4954 §4, RFC 9051 §6.2.2). Returns null when invalid. */
export function decodeBase64Strict(text: string): Buffer | null {
  if (text === '=') return Buffer.alloc(0);
  if (text.length > SASL_MAX_TOKEN_BYTES || !isStrictBase64(text)) return null;
  return Buffer.from(text, 'base64');
}

/** PLAIN: [authzid] NUL authcid NUL passwd, exactly two NULs, non-empty authcid.
 *  An authzid other than the authcid (acting for another user) is refused: the replay to the
 *  backend cannot carry it, and silently dropping it would log in as the wrong identity. */
export function decodePlain(raw: Buffer): Credentials | SaslFailure {
  const first = raw.indexOf(0);
  const second = first < 0 ? -1 : raw.indexOf(0, first + 1);
  if (first < 0 || second < 0 || raw.indexOf(0, second + 1) >= 0) return 'bad-plain';
  const authzid = raw.subarray(0, first);
  const user = raw.subarray(first + 1, second);
  const password = raw.subarray(second + 1);
  if (user.length === 0) return 'bad-plain';
  if (user.length > SASL_MAX_FIELD_BYTES || password.length > SASL_MAX_FIELD_BYTES || authzid.length > SASL_MAX_FIELD_BYTES) {
    return 'too-long';
  }
  if (authzid.length > 0 && !authzid.equals(user)) return 'authzid-unsupported';
  return { mechanism: 'PLAIN', user: Buffer.from(user), password: Buffer.from(password) };
}

/** RFC 5801 §4 gs2-header, the forms RFC 7628 allows: "n," or "y," (OAUTHBEARER has no
 *  channel binding, §4.1, so "p=…" and the non-standard "F," are refused), an optional
 *  "a=" authzid, ",". */
const GS2_RE = /^[ny],(?:a=([^,]*))?,/;
/** saslname (RFC 5801 §4): "," and "=" only as =2C and =3D; never NUL. */
const SASLNAME_RE = /^(?:[^=,\x00]|=2C|=3D)+$/;
/** RFC 7628 §3.1: key = 1*ALPHA, value = *(VCHAR / SP / HTAB / CR / LF). */
const KV_RE = /^([A-Za-z]+)=([\x21-\x7e \t\r\n]*)$/;
/** RFC 6750 §2.1: "Bearer" 1*SP b64token; scheme names are case-insensitive (RFC 9110 §11.1). */
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/** key=value pairs from `from`, each ended by %x01, then one more %x01 ending the message;
 *  values with their offsets (latin1: one char per byte). Null when malformed, or when a key
 *  repeats in any case: the pair we read must be the one the backend reads. */
function kvPairs(text: string, from: number): Map<string, { value: string; at: number }> | null {
  const pairs = new Map<string, { value: string; at: number }>();
  let pos = from;
  while (pos < text.length - 1) {
    const end = text.indexOf('\x01', pos);
    const m = end < 0 ? null : KV_RE.exec(text.slice(pos, end));
    if (!m || pairs.size >= OAUTH_MAX_PAIRS) return null;
    const key = m[1]!.toLowerCase();
    if (pairs.has(key)) return null;
    pairs.set(key, { value: m[2]!, at: pos + m[1]!.length + 1 });
    pos = end + 1;
  }
  return pos === text.length - 1 && text[pos] === '\x01' ? pairs : null;
}

/**
 * OAUTHBEARER (RFC 7628 §3.1): gs2-header %x01 *(key=value %x01) %x01, e.g.
 * "n,a=user@example.org,\x01host=…\x01port=…\x01auth=Bearer <token>\x01\x01".
 * XOAUTH2 (Google's format): "user=<user>\x01auth=Bearer <token>\x01\x01", no other keys.
 * The user name (OAUTHBEARER: the authzid, which then is required, as Dovecot requires it)
 * is what limits count; the message itself goes to the backend unchanged, and only the
 * backend judges the token. `raw` becomes the credentials' (no copy); the token is a view.
 */
export function decodeOAuth(mechanism: OAuthMechanism, raw: Buffer): Credentials | SaslFailure {
  if (raw.length > OAUTH_MAX_MESSAGE_BYTES) return 'too-long';
  const text = raw.toString('latin1');
  let user: string;
  let pairs: ReturnType<typeof kvPairs>;
  if (mechanism === 'OAUTHBEARER') {
    const gs2 = GS2_RE.exec(text);
    const authzid = gs2?.[1];
    if (!gs2 || !authzid || !SASLNAME_RE.test(authzid) || text[gs2[0].length] !== '\x01') return 'bad-oauth';
    user = authzid.replace(/=2C/g, ',').replace(/=3D/g, '=');
    pairs = kvPairs(text, gs2[0].length + 1);
  } else {
    pairs = kvPairs(text, 0);
    if (!pairs || pairs.size !== 2) return 'bad-oauth';
    user = pairs.get('user')?.value ?? '';
  }
  const auth = pairs?.get('auth');
  const bearer = auth ? BEARER_RE.exec(auth.value) : null;
  if (!auth || !bearer || user.length === 0) return 'bad-oauth';
  if (user.length > SASL_MAX_FIELD_BYTES) return 'too-long';
  const tokenEnd = auth.at + auth.value.length;
  return { mechanism, user: Buffer.from(user, 'latin1'), password: raw.subarray(tokenEnd - bearer[1]!.length, tokenEnd), raw };
}

/** The client's answer to a challenge the backend sent (RFC 7628 §3.2.3: normally the dummy
 *  %x01, "AQ=="), for the backend: "*" (cancel) or strict base64 as sent; anything else
 *  becomes "*", so no unchecked client bytes reach the backend's SASL decoder. */
export function relayedResponse(line: string): string {
  return line === '*' || decodeBase64Strict(line) !== null ? line : '*';
}

const LOGIN_USER_PROMPT = Buffer.from('Username:').toString('base64');
const LOGIN_PASS_PROMPT = Buffer.from('Password:').toString('base64');

/** One SASL exchange. Create it per AUTH command; it is discarded on any outcome,
 *  so no state survives a failure or cancel. */
export class SaslExchange {
  private user: Buffer | null = null;
  private constructor(readonly mechanism: SaslMechanism) {}

  static start(name: string, initial: string | null, offered: readonly SaslMechanism[]): { exchange: SaslExchange | null; step: SaslStep } {
    const mech = name.toUpperCase() as SaslMechanism;
    if (!offered.includes(mech)) return { exchange: null, step: { kind: 'fail', reason: 'unknown-mechanism' } };
    const ex = new SaslExchange(mech);
    if (initial === null) {
      // Without an initial response: LOGIN asks for the user name, the others send an empty
      // challenge (RFC 4616 §2, RFC 7628 §3.2.1).
      return { exchange: ex, step: { kind: 'challenge', text: mech === 'LOGIN' ? LOGIN_USER_PROMPT : '' } };
    }
    return { exchange: ex, step: ex.respond(initial) };
  }

  /** Feed one client response line (without CRLF). On failure nothing of the exchange is
   *  kept: a LOGIN user name already received is zeroed. */
  respond(line: string): SaslStep {
    const step = this.step(line);
    if (step.kind === 'fail') this.user?.fill(0);
    return step;
  }

  private step(line: string): SaslStep {
    if (line === '*') return { kind: 'fail', reason: 'cancelled' };
    const data = decodeBase64Strict(line);
    if (data === null) return { kind: 'fail', reason: line.length > SASL_MAX_TOKEN_BYTES ? 'too-long' : 'bad-base64' };
    if (this.mechanism === 'PLAIN') {
      const creds = decodePlain(data);
      data.fill(0);
      return typeof creds === 'string' ? { kind: 'fail', reason: creds } : { kind: 'done', credentials: creds };
    }
    if (this.mechanism !== 'LOGIN') {
      const creds = decodeOAuth(this.mechanism, data);
      if (typeof creds !== 'string') return { kind: 'done', credentials: creds };
      data.fill(0);
      return { kind: 'fail', reason: creds };
    }
    if (data.length > SASL_MAX_FIELD_BYTES) return { kind: 'fail', reason: 'too-long' };
    if (this.user === null) {
      if (data.length === 0) return { kind: 'fail', reason: 'bad-plain' };
      this.user = data;
      return { kind: 'challenge', text: LOGIN_PASS_PROMPT };
    }
    return { kind: 'done', credentials: { mechanism: 'LOGIN', user: this.user, password: data } };
  }
}

/** Overwrite credential bytes once they are no longer needed. */
export function wipeCredentials(c: Credentials): void {
  c.user.fill(0);
  c.password.fill(0);
  c.raw?.fill(0);
}
