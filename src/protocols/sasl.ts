// The one SASL module (RFC 4422) for IMAP, POP3 and SMTP: strict base64, PLAIN (RFC 4616)
// and LOGIN decoding, as a small pure exchange. Pure: no sockets, no timers, no logging.
import { SASL_MAX_FIELD_BYTES, SASL_MAX_TOKEN_BYTES } from './bounds.js';

export type SaslMechanism = 'PLAIN' | 'LOGIN';
export const SASL_MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'LOGIN'];

export interface Credentials {
  mechanism: SaslMechanism | 'USER' | 'IMAP-LOGIN';
  user: Buffer;
  password: Buffer;
}

export type SaslStep =
  | { kind: 'challenge'; text: string } // base64 text to send as the server challenge
  | { kind: 'done'; credentials: Credentials }
  | { kind: 'fail'; reason: SaslFailure };

export type SaslFailure = 'cancelled' | 'bad-base64' | 'bad-plain' | 'too-long' | 'authzid-unsupported' | 'unknown-mechanism';

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64: Node's decoder skips bad characters silently, so validate first.
 *  "=" is the empty response (RFC 4954 §4, RFC 9051 §6.2.2). Returns null when invalid. */
export function decodeBase64Strict(text: string): Buffer | null {
  if (text === '=') return Buffer.alloc(0);
  if (text.length > SASL_MAX_TOKEN_BYTES || !B64_RE.test(text)) return null;
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
      // PLAIN without initial response: empty challenge; LOGIN: ask for the user name.
      return { exchange: ex, step: { kind: 'challenge', text: mech === 'PLAIN' ? '' : LOGIN_USER_PROMPT } };
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
}
