// Every byte and count bound that protects the process (pre-auth parsers, SASL, backend
// replies, PROXY headers), in one place, used project-wide as imapflow keeps its limits.js.
// Timeouts an operator may tune are config defaults, beside their keys in config/schema.ts.
// Pure constants: each says why it exists; SECURITY.md lists them for operators.

/** IMAP pre-auth command line (per line segment between literals). Dovecot uses 8 KiB too;
 *  anything longer before login is an attack or a broken client. */
export const IMAP_MAX_LINE_BYTES = 8 * 1024;

/** One IMAP literal before login. Usernames and passwords are far smaller; ID values are
 *  at most 1024 octets (RFC 2971 §3.3). Larger literals are refused without sending "+". */
export const IMAP_MAX_LITERAL_BYTES = 8 * 1024;

/** Whole IMAP pre-auth command (line segments plus literals), so many small literals
 *  cannot add up to an unbounded buffer. */
export const IMAP_MAX_COMMAND_BYTES = 32 * 1024;

/** Digits accepted in a literal length: more would overflow before the size check
 *  could refuse it ({99999999999999999999} must not wrap). */
export const IMAP_MAX_LITERAL_DIGITS = 10;

/** Parenthesis nesting before login (only ID takes a list, depth 1). Bounded so nesting
 *  cannot blow up the parser (Dovecot CVE-2026-27857). */
export const IMAP_MAX_LIST_DEPTH = 4;

/** Tokens in one IMAP pre-auth command: tag, verb, atoms, strings, literals and every "("
 *  opened (closed or not), at any depth. Bytes alone do not bound memory: 8 KiB of "()" or
 *  '""' is thousands of objects of tens of bytes each, held while the command waits for its
 *  next literal (Dovecot CVE-2026-27857, CVE-2026-42006: many "(" before login; Dovecot's
 *  first fix counted ")" instead). The largest pre-auth command is ID with at most 30
 *  field-value pairs (RFC 2971 §3.3): tag, verb, list and 60 strings, 63 tokens. */
export const IMAP_MAX_COMMAND_TOKENS = 64;

/** A non-synchronizing literal {n+} once mailgate advertised LITERAL- (the backend offers it
 *  and not LITERAL+): RFC 7888 §4 caps it at 4096 octets, and Dovecot with
 *  imap_literal_minus refuses larger ones. Larger literals must be synchronizing. */
export const IMAP_LITERAL_MINUS_MAX_BYTES = 4096;

/** Decoded SASL credentials (authzid/authcid/password each). RFC 4616 §2 caps each at 255
 *  octets of UTF-8; we allow more for long tokens but bound it. */
export const SASL_MAX_FIELD_BYTES = 1024;

/** Encoded SASL response line, CRLF excluded (RFC 4954 §4 uses 12,288 octets for SMTP), in all
 *  three protocols: IMAP's continuation line may be longer than its command lines too. */
export const SASL_MAX_TOKEN_BYTES = 12_288;

/** A decoded OAUTHBEARER/XOAUTH2 message (RFC 7628 §3.1), token included: what one response
 *  line of SASL_MAX_TOKEN_BYTES base64 can carry. JWT access tokens (Entra ID, Keycloak) run to
 *  a few KiB, Google's to a few hundred bytes; the user name is held to SASL_MAX_FIELD_BYTES. */
export const OAUTH_MAX_MESSAGE_BYTES = (SASL_MAX_TOKEN_BYTES / 4) * 3;

/** Key/value pairs in one OAUTHBEARER message: RFC 7628 defines host, port and auth; a few
 *  more leave room for extensions without letting a message be thousands of tiny pairs. */
export const OAUTH_MAX_PAIRS = 8;

/** Bytes we accept from a backend before its login reply; a server that talks more is broken. */
export const BACKEND_MAX_PRELOGIN_BYTES = 64 * 1024;

/** POP3 command line. RFC 2449 §4 caps commands at 255 octets; we allow a little slack for
 *  clients that pad, and SASL responses use SASL_MAX_TOKEN_BYTES instead. */
export const POP3_MAX_LINE_BYTES = 512;

/** SMTP command line: RFC 5321 §4.5.3.1.4 says 512 octets including CRLF. AUTH lines and
 *  SASL responses may be longer (RFC 4954 §4: 12,288), bounded by SASL_MAX_TOKEN_BYTES. */
export const SMTP_MAX_LINE_BYTES = 512;

/** PROXY protocol v1 header, CRLF included: the spec's own worst case (TCP6, two full IPv6
 *  addresses, two 5-digit ports) is 107 bytes, so anything longer is not a header. */
export const PROXY_V1_MAX_BYTES = 107;

/** PROXY protocol v2: 16 fixed bytes, then at most 216 bytes of addresses and TLVs (216 is
 *  the largest address block, AF_UNIX; the spec's recommended receive buffer is 16 + 216).
 *  A longer length field is refused rather than buffered. */
export const PROXY_V2_MAX_BYTES = 16 + 216;

// --- Fairness before login (issue 15): one client's pipelined flood must not stall the rest.

/** Commands (or answers to a challenge) one pre-auth connection has handled per event-loop
 *  turn before the other connections get theirs. One 64 KiB read of pipelined CAPABILITY is
 *  about 4,700 commands, each a reply and a write: answered in one go, a handful of such
 *  clients held the loop for seconds. A turn of every flooding connection is what a login
 *  waits for at each of its own steps, so the smaller the better for the others (tuning runs
 *  in BENCHMARKS.md). A real client pipelines two or three commands before login; any more
 *  follow a few microseconds later. */
export const PREAUTH_COMMANDS_PER_TURN = 2;

/** Replies a pre-auth client may leave unread before its commands are no longer read,
 *  counted in mailgate's own terms (reply bytes written, less what the client could have read
 *  since at PREAUTH_REPLY_DRAIN_BYTES_PER_SEC). The kernel's socket buffers (several MiB on
 *  loopback) cannot be the measure: Node can neither read nor shrink them (no SO_SNDBUF for
 *  TCP), and a client that never reads fills them before Node holds a byte. A real client's
 *  whole dialogue before login (greeting, capabilities, ID, a challenge, three refusals) is
 *  one or two KiB, each reply read before the next command. It is also what every flooding
 *  connection costs at once when sixty (re)connect together: with 16 KiB (and 2 commands a
 *  turn) the login p99 at 60 flooders was 2.3x its unloaded figure, with 8 KiB 1.1x. */
export const PREAUTH_UNREAD_REPLY_BYTES = 8 * 1024;

/** How fast a pre-auth client is assumed to read its replies: the rate at which the unread
 *  count falls (a 32 kbit/s link). Any client that reads at all reads faster than that; one
 *  that never does gets no more than this many bytes of replies a second once over the bound. */
export const PREAUTH_REPLY_DRAIN_BYTES_PER_SEC = 4 * 1024;

/** How long, in all, a pre-auth client may be held unread over PREAUTH_UNREAD_REPLY_BYTES
 *  before it gets the protocol's goodbye: four or five pauses of about 1 s each (the bound
 *  draining to half at the rate above). A real client never gets there; a flood that does
 *  has cost about 30 KiB of replies. */
export const PREAUTH_UNREAD_DEADLINE_MS = 5_000;

/** Reply bytes Node itself may hold for a pre-auth client (its socket's writableLength): past
 *  it the kernel's buffers are full too, so the client has not read for a long time, and it is
 *  dropped without a goodbye it could not receive. Above the unread bound plus one turn of
 *  replies and one backend refusal forwarded whole (BACKEND_MAX_PRELOGIN_BYTES). */
export const PREAUTH_MAX_QUEUED_REPLY_BYTES = 128 * 1024;
