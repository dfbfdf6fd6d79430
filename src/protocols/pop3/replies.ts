// Canned POP3 replies (RFC 1939 §3, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034, response
// codes RFC 3206). Never echo client text; never offer APOP (no "<...>" in the greeting).
import type { LineReplies } from '../line-machine.js';
import type { LoginReplies } from '../login-answer.js';
import type { SaslFailure } from '../sasl.js';

/** Backend CAPA lines passed on before login (RFC 2449 §6): the transaction-state ones the
 *  backend serves through the splice, and PIPELINING, which our machine honours pre-login
 *  (commands are answered in order; those behind a login go to the backend after its +OK).
 *  Clients should re-issue CAPA after login (RFC 2449 §5); many do not. Never passed on:
 *  STLS, USER, SASL, RESP-CODES, AUTH-RESP-CODE (ours: SASL lists offeredMechanisms, never the
 *  backend's SCRAM-*-PLUS, which cannot bind to a TLS mailgate ends), XCLIENT, UTF8 and LANG
 *  (they change the pre-login dialogue, RFC 6856), IMPLEMENTATION (names the backend's software). */
const BACKEND_CAPA = new Set(['TOP', 'UIDL', 'PIPELINING', 'EXPIRE', 'LOGIN-DELAY']);

/** A CAPA line we can repeat: printable ASCII words, never dot-led (RFC 1939 §3 stuffing). */
const CAPA_LINE = /^[\x21-\x2d\x2f-\x7e][\x21-\x7e]*(?: [\x21-\x7e]+)*$/;

/** The SASL mechanisms the backend lists in its CAPA "SASL …" line (RFC 2449 §6.3). */
export function backendMechanisms(backend: readonly string[]): string[] {
  const line = backend.find((l) => /^SASL(?: |$)/i.test(l));
  return line ? line.split(' ').slice(1).filter(Boolean) : [];
}

/** Pre-login CAPA list (RFC 2449 §5): ours, plus what the backend offers of BACKEND_CAPA (its
 *  lines as written, arguments included, e.g. "EXPIRE 31"). */
export function capabilities(opts: { offerStls: boolean; loginAllowed: boolean; mechanisms: readonly string[]; backend: readonly string[] }): string[] {
  const caps = ['CAPA'];
  const seen = new Set<string>();
  for (const line of opts.backend) {
    const name = line.split(' ')[0]!.toUpperCase();
    if (CAPA_LINE.test(line) && BACKEND_CAPA.has(name) && !seen.has(name)) {
      seen.add(name);
      caps.push(line);
    }
  }
  if (opts.offerStls) caps.push('STLS');
  if (opts.loginAllowed) caps.push('USER', `SASL ${opts.mechanisms.join(' ')}`);
  caps.push('RESP-CODES', 'AUTH-RESP-CODE');
  return caps;
}

/** A multi-line +OK response (RFC 1939 §3): items are our own tokens, never dot-led. */
const multiLine = (first: string, items: readonly string[]) => `+OK ${first}\r\n${items.map((i) => `${i}\r\n`).join('')}.\r\n`;

/** POP3's own commands. */
export const R = {
  greeting: '+OK POP3 server ready.\r\n',
  capa: (caps: readonly string[]) => multiLine('Capability list follows.', caps),
  mechanisms: (mechs: readonly string[]) => multiLine('Supported SASL mechanisms follow.', mechs),
  userOk: '+OK Send your password.\r\n',
  quit: '+OK Logging out.\r\n',
  passWithoutUser: '-ERR Send USER first.\r\n',
} as const;

const limited = (retryAfterSec: number) => `-ERR [SYS/TEMP] Too many login attempts; try again in ${retryAfterSec} seconds.\r\n`;

const LOGIN: LoginReplies = {
  limited,
  unavailable: '-ERR [SYS/TEMP] Mail server temporarily unavailable; try again later.\r\n',
  authFailed: '-ERR [AUTH] Authentication failed.\r\n',
  tooManyFailures: '-ERR Too many failed logins; closing connection.\r\n',
};

/** RFC 5034 §4: "*" MUST be answered with -ERR; a malformed PLAIN reads as a failed login. */
const SASL_FAILURE: Record<SaslFailure, string> = {
  'unknown-mechanism': '-ERR Unsupported authentication mechanism.\r\n',
  'authzid-unsupported': '-ERR Authorization identity not supported.\r\n',
  cancelled: '-ERR Authentication cancelled.\r\n',
  'bad-plain': LOGIN.authFailed,
  'bad-oauth': LOGIN.authFailed,
  'bad-base64': '-ERR Invalid SASL response.\r\n',
  'too-long': '-ERR Invalid SASL response.\r\n',
};

/** What the shared line machine says, in POP3's words. */
export const REPLIES: LineReplies = {
  unknown: () => '-ERR Unknown command.\r\n',
  syntax: (_, usage) => `-ERR Syntax: ${usage}\r\n`,
  // Deliberately no [AUTH] code: RFC 3206 §4 says [AUTH] means the credentials are wrong,
  // and a client would then ask its user for a new password.
  privacy: () => '-ERR Plaintext authentication disallowed on non-secure connections; use STLS.\r\n',
  startTls: () => '+OK Begin TLS negotiation now.\r\n',
  tlsActive: () => '-ERR TLS is already active.\r\n',
  tlsUnavailable: () => '-ERR STLS is not available here.\r\n',
  challenge: (text) => `+ ${text}\r\n`,
  saslFailure: (reason) => SASL_FAILURE[reason],
  login: () => LOGIN,
  lineTooLong: '-ERR Line too long.\r\n',
  tooManyErrors: '-ERR Too many invalid commands; closing connection.\r\n',
  goodbye: {
    timeout: () => '-ERR [SYS/TEMP] Disconnected for inactivity.\r\n',
    shutdown: () => '-ERR [SYS/TEMP] Server shutting down; try again later.\r\n',
    busy: () => '-ERR [SYS/TEMP] Too many connections; try again later.\r\n',
    limited,
    /** RFC 3206 §4 SYS/PERM: do not retry. */
    denied: () => '-ERR [SYS/PERM] Access denied.\r\n',
  },
};
