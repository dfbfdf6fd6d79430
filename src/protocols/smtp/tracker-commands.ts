// One SMTP command line (after AUTH, on the spliced submission stream) → SmtpCommand, for the
// tracker (tracker.ts). Pure: no state, no I/O. It mirrors how Dovecot 2.3's lib-smtp
// (smtp-command-parser.c, smtp-server-cmd-data.c) reads a line wherever that decides what
// the following bytes are (BDAT); elsewhere the backend's reply decides and this only names.

/** The verb and its parameters (RFC 5321 §4.1.1, RFC 3030 §2). */
export type SmtpCommand =
  | { verb: 'MAIL'; path: string }
  | { verb: 'RCPT'; path: string }
  | { verb: 'DATA' }
  | { verb: 'BDAT'; size: number; last: boolean }
  | { verb: 'RSET' }
  | { verb: 'QUIT' }
  | { verb: 'OTHER'; name: string; known: boolean };

/** Dovecot's command-name bound (SMTP_COMMAND_PARSER_MAX_COMMAND_LENGTH): longer is 500. */
const MAX_VERB_CHARS = 32;

/** Dovecot takes at most 4 KiB of parameters after the verb and its space
 *  (SMTP_COMMAND_DEFAULT_MAX_PARAMETERS_SIZE) and answers a longer line once with
 *  "500 5.5.2 Line too long", then skips to its LF and reads on. So no line longer than this
 *  (verb, space, parameters, CRLF) is ever a command there: the tracker holds no more than
 *  this of a partial line, passes a longer one through and expects one failure reply. */
export const TRACKER_MAX_LINE_BYTES = MAX_VERB_CHARS + 1 + 4096 + 2;

/** Client bytes held while a reply is awaited (after DATA, after a message's end). The splice
 *  pauses the client meanwhile, so only a client that pipelines past the protocol (a body
 *  before 354) gets here; the tracker then gives up rather than buffer more. */
export const TRACKER_MAX_HELD_BYTES = 256 * 1024;

/** Dovecot closes the connection on a BDAT larger than SMTP_COMMAND_DEFAULT_MAX_DATA_SIZE
 *  (40 MiB); a size past 2^53 is not even a number we can count down exactly. */
const MAX_CHUNK_DIGITS = 15;

/** Verbs SMTP defines: RFC 5321 (and RFC 821's SEND/SOML/SAML/TURN), STARTTLS (RFC 3207),
 *  AUTH (RFC 4954), BDAT (RFC 3030), BURL (RFC 4468), ETRN (RFC 1985), ATRN (RFC 2645).
 *  Anything else (XCLIENT, XFORWARD, typos) is counted as unknown. */
const KNOWN_OTHER = new Set(['HELO', 'EHLO', 'VRFY', 'EXPN', 'HELP', 'NOOP', 'STARTTLS', 'AUTH', 'BURL', 'ETRN', 'ATRN', 'TURN', 'SEND', 'SOML', 'SAML']);

const isAlpha = (c: number | undefined) => c !== undefined && ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a));

/** What BDAT parameters mean to Dovecot (smtp_server_cmd_bdat): split on single spaces,
 *  trailing blanks trimmed, a chunk size of decimal digits (str_to_uoff), then an optional
 *  end marker. With a size it reads `size` octets even when it answers 501 (bad marker, extra
 *  parameters); without one it answers 501 and reads none. null: no size. */
export function bdatParams(params: string): { size: number; last: boolean } | null {
  // Dovecot refuses the whole line (500, reads nothing) on a second space after the verb or a
  // character outside textstr or invalid UTF-8; non-ASCII is never part of a valid BDAT, so
  // any is taken as "no size" rather than judged (a 501 that still reads the chunk).
  if (params.startsWith(' ') || !/^[\t\x20-\x7e]*$/.test(params)) return null;
  const argv = params.replace(/[ \t]+$/, '').split(' ');
  const digits = argv[0] ?? '';
  if (!/^[0-9]+$/.test(digits) || digits.replace(/^0+(?=.)/, '').length > MAX_CHUNK_DIGITS) return null;
  return { size: Number(digits), last: argv.length === 2 && argv[1]!.toUpperCase() === 'LAST' };
}

/** The path of MAIL FROM:/RCPT TO: as sent, inside its <> ('' for <>): after the keyword,
 *  optional blanks (some clients write "MAIL FROM: <a>"), then <…> read with quoted local
 *  parts ("a>b"@c, backslash escapes: RFC 5321 §4.1.2), or a bare mailbox up to the first
 *  space (Dovecot's mailbox-for-path workaround). Parameters after it (SIZE=, BODY=,
 *  SMTPUTF8, NOTIFY=, ORCPT=) are not part of the path. */
export function pathOf(params: string, keyword: 'FROM:' | 'TO:'): string {
  if (params.slice(0, keyword.length).toUpperCase() !== keyword) return '';
  let i = keyword.length;
  while (params[i] === ' ' || params[i] === '\t') i++;
  if (params[i] !== '<') {
    const end = params.indexOf(' ', i);
    return params.slice(i, end < 0 ? undefined : end);
  }
  let quoted = false;
  for (let j = i + 1; j < params.length; j++) {
    const c = params[j];
    if (quoted && c === '\\') j++;
    else if (c === '"') quoted = !quoted;
    else if (c === '>' && !quoted) return params.slice(i + 1, j);
  }
  return params.slice(i + 1);
}

/** A command line (LF included; CRLF or bare LF, as Dovecot ends it) → its command, or null
 *  for a BDAT whose chunk length cannot be known (the tracker then loses sync). */
export function parseCommand(line: Buffer): SmtpCommand | null {
  let n = 0;
  while (isAlpha(line[n])) n++;
  const verb = line.toString('latin1', 0, Math.min(n, MAX_VERB_CHARS)).toUpperCase();
  const next = line[n];
  // Dovecot: letters, then SP or the line's end; anything else is a 500 for the whole line.
  if (n === 0 || n > MAX_VERB_CHARS || (next !== 0x20 && next !== 0x0d && next !== 0x0a)) {
    return verb === 'BDAT' ? null : { verb: 'OTHER', name: verb, known: false };
  }
  const end = line.length - (line[line.length - 2] === 0x0d ? 2 : 1);
  const params = next === 0x20 ? line.toString('utf8', n + 1, end) : '';
  switch (verb) {
    case 'MAIL':
      return { verb, path: pathOf(params, 'FROM:') };
    case 'RCPT':
      return { verb, path: pathOf(params, 'TO:') };
    case 'DATA':
    case 'RSET':
    case 'QUIT':
      return { verb };
    case 'BDAT': {
      if (next !== 0x20) return null;
      const p = bdatParams(line.toString('latin1', n + 1, end));
      return p && { verb, ...p };
    }
    default:
      return { verb: 'OTHER', name: verb, known: KNOWN_OTHER.has(verb) };
  }
}
