// The user name as limits, logs and keys see it: decoded once, validated, canonicalised.
// Pure. The backend always gets the exact bytes the client sent, never this form.

export type UserCheck = { ok: true; canonical: string; display: string } | { ok: false; reason: string; display: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });
// C0 controls, DEL and C1 controls: never part of a real user name, and dangerous in
// backend lines (CR, LF, NUL) and logs.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/** A log-safe rendering: printable ASCII/Unicode kept, everything else as \xNN. */
export function printable(raw: Buffer, max = 256): string {
  let out = '';
  const text = raw.subarray(0, max).toString('latin1');
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out += c < 0x20 || (c >= 0x7f && c < 0xa0) || c === 0x5c ? `\\x${c.toString(16).padStart(2, '0')}` : ch;
  }
  if (raw.length > max) out += '…';
  // Re-decode valid UTF-8 for readability; fall back to the escaped latin1 form.
  try {
    const decoded = utf8.decode(raw.subarray(0, max));
    if (!CONTROL_RE.test(decoded) && !decoded.includes('\\')) return decoded + (raw.length > max ? '…' : '');
  } catch {
    /* not UTF-8: keep the escaped form */
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
