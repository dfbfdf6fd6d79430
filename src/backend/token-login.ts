// Token logins toward the backend (OAUTHBEARER RFC 7628, XOAUTH2), shared by the replays:
// the client's message encoded for the wire, and the backend's error challenge wrapped so the
// attempt always ends, and ends as a failure unless the backend says OK. No protocol framing.
import type { BackendLoginResult, FinalBackendLoginResult } from './types.js';
import { decodeBase64Strict, type TokenCredentials } from '../protocols/sasl.js';
import { MailgateError } from '../errors.js';
import type { BackendConn } from './connect.js';

/** The token was refused; the client hears the protocol's own failure reply. */
const REFUSED: FinalBackendLoginResult = { kind: 'rejected', clientReply: null };

/** The client's decoded message as base64, unchanged, in a buffer the caller wipes. The
 *  string in between cannot be wiped (JS strings are immutable); it is short-lived. */
export function encodedMessage(c: TokenCredentials): Buffer {
  return Buffer.from(c.raw.toString('base64'), 'latin1');
}

/**
 * The backend answered a token with a challenge ("+ …" / "334 …"): with OAUTHBEARER and
 * XOAUTH2 that is only ever an error report (RFC 7628 §3.2.2, base64 JSON), and the server
 * waits for one more client line before it sends its failure. The text goes to the client
 * only if it is strict base64 within the SASL bound; else the attempt ends here.
 *
 * `finish` sends the client's answer and reads the final reply. Whatever goes wrong after the
 * challenge (the client leaves or never answers, the login deadline passes, the backend sends
 * nonsense or a temporary failure) the result is a rejection in the protocol's own words: the
 * backend has judged the token already, and an attempt must not escape the failure count by
 * never answering. An exception that is not a MailgateError is a bug and is thrown on.
 */
export function errorChallenge(conn: BackendConn, text: string, finish: (response: string) => Promise<FinalBackendLoginResult>): BackendLoginResult {
  if (decodeBase64Strict(text) === null) {
    conn.close();
    return REFUSED;
  }
  return {
    kind: 'challenge',
    challenge: text,
    async respond(response) {
      if (response === null) {
        conn.close();
        return REFUSED;
      }
      try {
        const result = await finish(response);
        if (result.kind !== 'unavailable') return result;
      } catch (err) {
        if (!(err instanceof MailgateError)) {
          conn.close();
          throw err;
        }
      }
      conn.close();
      return REFUSED;
    },
  };
}
