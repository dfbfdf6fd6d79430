// Encodings tests speak: base64 for SASL (RFC 4648 §4, as RFC 4422 exchanges carry it).
// Pure.

/** Base64 of a string taken as latin1 (one byte per character, so "\0" and any octet
 *  round-trip as written) or of raw bytes. */
export const b64 = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).toString('base64');
