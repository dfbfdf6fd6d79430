// Canned SMTP submission replies (RFC 5321 §4.2, enhanced codes RFC 3463, AUTH RFC 4954,
// STARTTLS RFC 3207). Never echo client text.
import type { LineReplies } from '../line-machine.js';
import type { LoginReplies } from '../login-answer.js';
import type { SaslFailure } from '../sasl.js';

/** EHLO keywords we pass on from the backend's own EHLO: clients do not EHLO again after
 *  AUTH, so they must see what the server they end up talking to supports. mailgate owns
 *  STARTTLS and AUTH (offeredMechanisms: never the backend's SCRAM-*-PLUS, which cannot bind to
 *  a TLS mailgate ends); XCLIENT/XFORWARD and everything else are never offered. */
export const BACKEND_KEYWORDS = new Set(['PIPELINING', 'SIZE', '8BITMIME', 'SMTPUTF8', 'CHUNKING', 'ENHANCEDSTATUSCODES', 'DSN']);

/** The backend's EHLO lines we advertise: allowed keyword, printable ASCII parameters only. */
export function passThroughKeywords(backend: readonly string[]): string[] {
  return backend.filter((line) => /^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/.test(line) && BACKEND_KEYWORDS.has(line.split(' ')[0]!.toUpperCase()));
}

/** The SASL mechanisms the backend lists in its EHLO "AUTH …" keyword (RFC 4954 §3). */
export function backendMechanisms(backend: readonly string[]): string[] {
  const line = backend.find((l) => l.split(' ')[0]!.toUpperCase() === 'AUTH');
  return line ? line.split(' ').slice(1).filter(Boolean) : [];
}

export function ehlo(hostname: string, keywords: string[]): string {
  const lines = [hostname, ...keywords];
  return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
}

/** SMTP's own commands. */
export const R = {
  greeting: (host: string) => `220 ${host} ESMTP ready\r\n`,
  helo: (host: string) => `250 ${host}\r\n`,
  ok: '250 2.0.0 OK\r\n',
  quit: (host: string) => `221 2.0.0 ${host} closing connection\r\n`,
  needEhlo: '503 5.5.1 Send EHLO first\r\n',
  authRequired: '530 5.7.0 Authentication required\r\n',
  lineTooLong: '500 5.5.2 Line too long\r\n',
} as const;

/** RFC 4954 §4: "*" and responses that cannot be decoded get 501. */
const SASL_FAILURE: Record<SaslFailure, string> = {
  'unknown-mechanism': '504 5.5.4 Unrecognized authentication type\r\n',
  'authzid-unsupported': '501 5.5.4 Authorization identity not supported\r\n',
  cancelled: '501 5.0.0 Authentication cancelled\r\n',
  'bad-base64': '501 5.5.2 Cannot decode response\r\n',
  'too-long': '501 5.5.2 Cannot decode response\r\n',
  'bad-plain': '501 5.5.2 Cannot decode response\r\n',
  'bad-oauth': '501 5.5.2 Cannot decode response\r\n',
};

/** What the shared line machine says, in SMTP's words; the 421 lines name our host. */
export function replies(host: string): LineReplies {
  const tooManyErrors = `421 4.7.0 ${host} Too many errors; closing connection\r\n`;
  const login: LoginReplies = {
    limited: (retryAfterSec) => `454 4.7.0 Too many login attempts; try again in ${retryAfterSec} seconds\r\n421 4.7.0 ${host} closing connection\r\n`,
    unavailable: '454 4.7.0 Temporary authentication failure; try again later\r\n',
    authFailed: '535 5.7.8 Authentication credentials invalid\r\n',
    tooManyFailures: `421 4.7.0 ${host} Too many failed logins; closing connection\r\n`,
  };
  return {
    unknown: () => '500 5.5.2 Command not recognized\r\n',
    syntax: (_, usage) => `501 5.5.4 Syntax: ${usage}\r\n`,
    // RFC 3207 §4: the server may refuse AUTH with 530 until STARTTLS.
    privacy: () => '530 5.7.0 Must issue a STARTTLS command first\r\n',
    startTls: () => '220 2.0.0 Ready to start TLS\r\n',
    tlsActive: () => '503 5.5.1 TLS already active\r\n',
    tlsUnavailable: () => '502 5.5.1 STARTTLS not available\r\n',
    challenge: (text) => `334 ${text}\r\n`,
    saslFailure: (reason) => SASL_FAILURE[reason],
    login: () => login,
    // A line past every bound is not buffered: said once, then the connection closes.
    lineTooLong: R.lineTooLong + tooManyErrors,
    tooManyErrors,
    goodbye: {
      timeout: () => `421 4.4.2 ${host} Timeout; closing connection\r\n`,
      shutdown: () => `421 4.3.2 ${host} Service shutting down\r\n`,
      busy: () => `421 4.7.0 ${host} Too many connections; try again later\r\n`,
      limited: (retryAfterSec) => `421 4.7.0 ${host} Too many login attempts; try again in ${retryAfterSec} seconds\r\n`,
      /** RFC 5321 §3.1: a 554 greeting refuses the session for good. */
      denied: () => `554 5.7.1 ${host} Access denied\r\n`,
    },
  };
}
