// Canned IMAP replies (RFC 9051 §7, response codes RFC 5530). Never echo client text
// except the tag, which the parser has validated as printable ASCII without spaces.

export function capabilities(opts: { secure: boolean; tlsMode: string; requireTls: boolean }): string {
  const caps = ['IMAP4rev1', 'SASL-IR', 'LITERAL+', 'ID'];
  if (!opts.secure && opts.tlsMode === 'starttls') caps.push('STARTTLS');
  if (!opts.secure && opts.requireTls) caps.push('LOGINDISABLED');
  else caps.push('AUTH=PLAIN', 'AUTH=LOGIN');
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
  byeFailures: '* BYE Too many failed logins.\r\n',
  byeTimeout: '* BYE Disconnected for inactivity.\r\n',
  byeShutdown: '* BYE Server shutting down.\r\n',
} as const;
