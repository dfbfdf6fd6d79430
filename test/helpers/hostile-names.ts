// EHLO names a client may send that must never reach a backend line (nginx CVE-2026-28753),
// shared by the SMTP machine's unit tests and the over-the-wire hostile test. Each is what
// follows "EHLO " on the client's line, as latin1 text (one char per byte). Pure data.

/** [what it is, the name]: each one refused by the SMTP machine as an EHLO name. */
export const HOSTILE_EHLO_NAMES: [string, string][] = [
  ['a bare CR', 'evil\rRSET'],
  ['a NUL', 'evil\x00.test'],
  ['a space', 'evil RSET'],
  ['a tab', 'evil\tRSET'],
  ['8-bit (Latin-1)', 'caf\xe9.test'],
  ['8-bit (UTF-8)', Buffer.from('café.test').toString('latin1')],
  ['300 characters', 'h'.repeat(300)],
  ['DEL', 'evil\x7f'],
];
