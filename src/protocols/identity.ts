// The user name as limits, logs and keys see it: decoded once, validated, canonicalised.
// Pure. The backend always gets the exact bytes the client sent, never this form.

export type UserCheck = { ok: true; canonical: string; display: string } | { ok: false; reason: string; display: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });
// C0 controls, DEL and C1 controls: never part of a real user name, and dangerous in
// backend lines (CR, LF, NUL) and logs.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
// Also escaped in logs: line/paragraph separators and bidi controls, which can make a log
// line read differently from what it contains (Trojan Source, CVE-2021-42574).
const LOG_UNSAFE_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** What the first `end` bytes are: 0 anything else, PLAIN printable ASCII without a
 *  backslash (every character its own rendering), or ASCII with one (escaped in logs). */
const PLAIN = 1;
const ASCII_WITH_BACKSLASH = 2;
function asciiKind(raw: Buffer, end: number): number {
  let kind = PLAIN;
  for (let i = 0; i < end; i++) {
    const b = raw[i]!;
    if (b < 0x20 || b > 0x7e) return 0;
    if (b === 0x5c) kind = ASCII_WITH_BACKSLASH;
  }
  return kind;
}

/** A log-safe rendering: printable Unicode kept, controls as \xNN, bidi/separators as \uNNNN. */
export function printable(raw: Buffer, max = 256): string {
  // Plain ASCII (most names) is its own rendering: the loops below would keep every character
  // (issue 22, measured).
  const end = Math.min(max, raw.length);
  if (asciiKind(raw, end) === PLAIN) return raw.toString('latin1', 0, end) + (raw.length > max ? '…' : '');
  return printableGeneral(raw, max);
}

/** printable without its fast path: what the fast path must agree with (tested). */
export function printableGeneral(raw: Buffer, max = 256): string {
  let out = '';
  const text = raw.subarray(0, max).toString('latin1');
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out += c < 0x20 || (c >= 0x7f && c < 0xa0) || c === 0x5c ? `\\x${c.toString(16).padStart(2, '0')}` : ch;
  }
  if (raw.length > max) out += '…';
  // Re-decode valid UTF-8 for readability (a cut may split a character: back off up to 3
  // bytes); controls keep the \xNN form, bidi and line separators become \uNNNN.
  for (let cut = Math.min(max, raw.length), tries = 0; tries < 4 && cut > 0; tries++, cut--) {
    let decoded: string;
    try {
      decoded = utf8.decode(raw.subarray(0, cut));
    } catch {
      if (raw.length <= max) break; // invalid UTF-8, not a cut: keep the escaped form
      continue;
    }
    if (CONTROL_RE.test(decoded) || decoded.includes('\\')) break;
    const safe = decoded.replace(LOG_UNSAFE_RE, (ch) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`);
    return safe + (raw.length > cut ? '…' : '');
  }
  return out;
}

export function checkUser(raw: Buffer): UserCheck {
  const display = printable(raw);
  // Printable ASCII decodes to itself, holds no control and is its own NFC form; its only
  // whitespace trim() takes is the space.
  if (asciiKind(raw, raw.length) !== 0) {
    const canonical = raw.toString('latin1').trim().toLowerCase();
    return canonical.length === 0 ? { ok: false, reason: 'empty', display } : { ok: true, canonical, display };
  }
  return canonicalOf(raw, display);
}

/** checkUser without its fast paths: what they must agree with (tested). */
export function checkUserGeneral(raw: Buffer): UserCheck {
  return canonicalOf(raw, printableGeneral(raw));
}

function canonicalOf(raw: Buffer, display: string): UserCheck {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, reason: 'invalid UTF-8', display };
  }
  if (CONTROL_RE.test(text)) return { ok: false, reason: 'control character', display };
  const canonical = text.trim().normalize('NFC').toLowerCase();
  if (canonical.length === 0) return { ok: false, reason: 'empty', display };
  return { ok: true, canonical, display };
}
