// Canned IMAP replies (RFC 9051 §7, response codes RFC 5530). Never echo client text
// except the tag, which the parser has validated as printable ASCII without spaces.
import type { PreauthReplies } from '../preauth-machine.js';
import { perList } from '../per-list.js';
import type { SaslFailure } from '../sasl.js';

/** Backend capabilities passed on before login: extensions the backend serves after login
 *  through the splice, none of which changes the pre-login dialogue our parser speaks (RFC
 *  9051 §6.1–6.2). A client that does not ask again after login (nor reads the CAPABILITY
 *  code of the LOGIN OK, which is the backend's own) goes on with this list, so it must not
 *  promise what the real server lacks. Names before "=" stand for families (THREAD=…).
 *  Never: LANGUAGE (valid before login, RFC 5255), UTF8= (changes string rules), UNAUTHENTICATE
 *  (RFC 8437: would let a spliced client log in again past the limits), vendor X- tokens. */
const BACKEND_CAPABILITIES = new Set([
  'LOGIN-REFERRALS', 'MAILBOX-REFERRALS', 'ENABLE', 'IDLE', 'NAMESPACE', 'UNSELECT', 'UIDPLUS', 'MOVE', 'CHILDREN',
  'SPECIAL-USE', 'CREATE-SPECIAL-USE', 'CONDSTORE', 'QRESYNC', 'ESEARCH', 'ESORT', 'SEARCHRES', 'WITHIN', 'SORT',
  'THREAD', 'LIST-EXTENDED', 'LIST-STATUS', 'QUOTA', 'ACL', 'RIGHTS', 'METADATA', 'METADATA-SERVER', 'BINARY',
  'CATENATE', 'MULTIAPPEND', 'URLAUTH', 'CONTEXT', 'NOTIFY', 'APPENDLIMIT', 'OBJECTID', 'SAVEDATE', 'PREVIEW',
  'STATUS', 'COMPRESS', 'SNIPPET', 'FUZZY',
]);

/** An IMAP atom that may sit in "[CAPABILITY …]": no space, "]", quote, brace or CTL. */
const CAPABILITY_ATOM = /^[A-Za-z0-9][A-Za-z0-9=+._-]*$/;

export interface CapabilityOptions {
  secure: boolean;
  tlsMode: string;
  requireTls: boolean;
  /** The backend's pre-login capabilities as probed; empty when unknown. */
  backend: readonly string[];
  /** The SASL mechanisms the machine accepts (offeredMechanisms); PLAIN and LOGIN if unset. */
  mechanisms?: readonly string[];
}

/** The SASL mechanisms the backend lists ("AUTH=…" tokens, RFC 9051 §7.2.2). */
export function backendMechanisms(backend: readonly string[]): string[] {
  return backend.filter((c) => /^AUTH=/i.test(c)).map((c) => c.slice(5));
}

/** The backend's capability atoms, upper-cased, for exact matches. */
const upperCaps = (backend: readonly string[]) => new Set(backend.filter((c) => CAPABILITY_ATOM.test(c)).map((c) => c.toUpperCase()));

/** The non-synchronizing literal form advertised (RFC 7888): the backend's, because clients
 *  keep using it after login; LITERAL+ when the backend is unknown (our parser takes {n+} up
 *  to its literal bound). Under LITERAL- the parser holds clients to its 4096 octets too. */
export function literalForm(backend: readonly string[]): 'LITERAL+' | 'LITERAL-' | null {
  const caps = upperCaps(backend);
  if (caps.size === 0 || caps.has('LITERAL+')) return 'LITERAL+';
  return caps.has('LITERAL-') ? 'LITERAL-' : null;
}

/** Whether the parser holds {n+} to 4096 octets for a client shown this backend's list:
 *  LITERAL- advertised, or IMAP4rev2 without LITERAL+ (RFC 9051 §4.3 makes LITERAL-'s
 *  non-synchronizing literals part of IMAP4rev2). */
export function literalMinus(backend: readonly string[]): boolean {
  const form = literalForm(backend);
  return form === 'LITERAL-' || (form === null && upperCaps(backend).has('IMAP4REV2'));
}

/**
 * The pre-login list. mailgate owns STARTTLS, LOGINDISABLED, AUTH=, SASL-IR and ID (answered
 * here). The revision and literal forms follow the backend, because clients keep using them
 * after login (literalForm). Unknown backend: our own defaults. SASL mechanisms are ours
 * (offeredMechanisms), never the backend's AUTH= list: no channel-binding -PLUS mechanism can
 * work through a proxy that terminates TLS (CVE-2026-33603).
 */
export function capabilities(opts: CapabilityOptions): string {
  // Every greeting asks, with the same few option sets per probed list: built once each.
  const memo = memoOf(opts.backend);
  const key = `${opts.secure}|${opts.tlsMode}|${opts.requireTls}|${opts.mechanisms?.join(' ') ?? ''}`;
  let caps = memo.get(key);
  if (caps === undefined) memo.set(key, (caps = build(opts)));
  return caps;
}

/** Per probed capability list (replaced, not mutated, on each probe). */
const memoOf = perList(() => new Map<string, string>());

function build(opts: CapabilityOptions): string {
  const backend = opts.backend.filter((c) => CAPABILITY_ATOM.test(c));
  const has = (name: string) => backend.some((c) => c.toUpperCase() === name);
  const known = backend.length > 0;
  const caps: string[] = [];
  if (!known || has('IMAP4REV1') || !has('IMAP4REV2')) caps.push('IMAP4rev1');
  if (has('IMAP4REV2')) caps.push('IMAP4rev2');
  caps.push('SASL-IR');
  const literal = literalForm(backend);
  if (literal) caps.push(literal);
  caps.push('ID');
  const seen = new Set(caps.map((c) => c.toUpperCase()));
  for (const c of backend) {
    const upper = c.toUpperCase();
    if (BACKEND_CAPABILITIES.has(upper.split('=')[0]!) && !seen.has(upper)) {
      seen.add(upper);
      caps.push(c);
    }
  }
  if (!opts.secure && opts.tlsMode === 'starttls') caps.push('STARTTLS');
  if (!opts.secure && opts.requireTls) caps.push('LOGINDISABLED');
  else caps.push(...(opts.mechanisms ?? ['PLAIN', 'LOGIN']).map((m) => `AUTH=${m}`));
  return caps.join(' ');
}

export const R = {
  greeting: (caps: string) => `* OK [CAPABILITY ${caps}] IMAP server ready.\r\n`,
  capability: (tag: string, caps: string) => `* CAPABILITY ${caps}\r\n${tag} OK Capability completed.\r\n`,
  ok: (tag: string, what: string) => `${tag} OK ${what} completed.\r\n`,
  bad: (tag: string, text: string) => `${tag} BAD ${text}\r\n`,
  no: (tag: string, code: string, text: string) => `${tag} NO [${code}] ${text}\r\n`,
  id: (tag: string) => `* ID NIL\r\n${tag} OK ID completed.\r\n`,
  logout: (tag: string) => `* BYE Logging out.\r\n${tag} OK Logout completed.\r\n`,
  startTls: (tag: string) => `${tag} OK Begin TLS negotiation now.\r\n`,
  continueLiteral: '+ Ready for literal data.\r\n',
  challenge: (text: string) => `+ ${text}\r\n`,
  privacyRequired: (tag: string) =>
    `${tag} NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections; use STARTTLS.\r\n`,
  limited: (tag: string, retryAfterSec: number) =>
    `${tag} NO [UNAVAILABLE] Too many login attempts; try again in ${retryAfterSec} seconds.\r\n* BYE Try again later.\r\n`,
  unavailable: (tag: string) => `${tag} NO [UNAVAILABLE] Mail server temporarily unavailable; try again later.\r\n`,
  authFailed: (tag: string) => `${tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`,
  byeErrors: '* BYE Too many invalid commands.\r\n',
  byeTooBig: '* BYE [TOOBIG] Literal too big; closing.\r\n',
  byeFailures: '* BYE Too many failed logins.\r\n',
  byeTimeout: '* BYE Disconnected for inactivity.\r\n',
  byeShutdown: '* BYE Server shutting down.\r\n',
  byeBusy: '* BYE [UNAVAILABLE] Too many connections; try again later.\r\n',
  // No response code fits a ban (RFC 5530 [UNAVAILABLE] would invite retries): text only.
  byeDenied: '* BYE Access denied.\r\n',
  byeLimited: (retryAfterSec: number) => `* BYE [UNAVAILABLE] Too many login attempts; try again in ${retryAfterSec} seconds.\r\n`,
} as const;

/** RFC 9051 §6.2.2: a cancelled exchange gets a tagged BAD, as does a response that cannot be
 *  decoded; the others are NO with the RFC 5530 code that says why. */
const SASL_FAILURE: Record<SaslFailure, (tag: string) => string> = {
  'unknown-mechanism': (tag) => R.no(tag, 'CANNOT', 'Unsupported authentication mechanism.'),
  'authzid-unsupported': (tag) => R.no(tag, 'AUTHORIZATIONFAILED', 'Authorization identity not supported.'),
  'bad-plain': R.authFailed,
  'bad-oauth': R.authFailed,
  cancelled: (tag) => R.bad(tag, 'Authentication cancelled.'),
  'bad-base64': (tag) => R.bad(tag, 'Invalid SASL response.'),
  'too-long': (tag) => R.bad(tag, 'Invalid SASL response.'),
};

/** What the shared pre-auth machine says, in IMAP's words. */
export const REPLIES: PreauthReplies = {
  unknown: (tag) => R.bad(tag, 'Unknown or not allowed command before login'),
  syntax: R.bad,
  privacy: R.privacyRequired,
  startTls: R.startTls,
  tlsActive: (tag) => R.bad(tag, 'TLS is already active'),
  tlsUnavailable: (tag) => R.bad(tag, 'STARTTLS is not available here'),
  challenge: R.challenge,
  saslFailure: (reason, tag) => SASL_FAILURE[reason](tag),
  login: (tag) => ({ limited: (s) => R.limited(tag, s), unavailable: R.unavailable(tag), authFailed: R.authFailed(tag), tooManyFailures: R.byeFailures }),
  tooManyErrors: R.byeErrors,
  goodbye: { timeout: () => R.byeTimeout, shutdown: () => R.byeShutdown, busy: () => R.byeBusy, limited: R.byeLimited, denied: () => R.byeDenied },
};

/** An untagged alert the client must show its user (RFC 9051 §7.1), sent before a tagged OK;
 *  the text is checked by the config (printable, no "]"). */
export const imapAlert = (text: string): string => `* OK [ALERT] ${text}\r\n`;
