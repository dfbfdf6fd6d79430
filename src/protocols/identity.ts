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

/** A log-safe rendering: printable Unicode kept, controls as \xNN, bidi/separators as \uNNNN. */
export function printable(raw: Buffer, max = 256): string {
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
