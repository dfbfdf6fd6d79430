// A session's TLS upgrade, as the session needs it: the handshake on its connection (implicit
// TLS, or after STARTTLS) within the deadline, counted and logged; and plaintext a client
// pipelined behind STARTTLS, counted and logged. tls.ts holds certificates and the handshake.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../logging/logger.js';
import type { SessionEnv } from './env.js';
import { acceptTls, tlsFacts } from './tls.js';

/** The TLS socket and the session's logger that names the TLS version and SNI name; null when
 *  the handshake failed, timed out or the client hung up (counted and logged). The plaintext
 *  socket's listeners are dropped first: nothing more is read from it as plaintext. */
export async function handshake(raw: Socket, env: SessionEnv, listener: string, log: Logger): Promise<{ secure: TLSSocket; log: Logger } | null> {
  raw.pause();
  raw.removeAllListeners('data');
  raw.removeAllListeners('end');
  const secure = await acceptTls(raw, env.tls!, env.timeouts.tlsHandshake);
  if (!secure) {
    env.metrics.tlsFailures.inc({ listener });
    log.info({ event: 'tls.failed' }, 'TLS handshake failed or timed out');
    return null;
  }
  const facts = tlsFacts(secure);
  env.metrics.tlsHandshakes.inc({ listener, version: facts.tls, resumed: secure.isSessionReused() ? 'yes' : 'no' });
  // Later lines (the login, the session's end) say which TLS and which name the client asked for.
  return { secure, log: log.child(facts) };
}

/** Plaintext pipelined behind STARTTLS and discarded unread: an injection attempt
 *  (CVE-2011-0411, CVE-2021-33515) when there was any. */
export function reportInjection(env: SessionEnv, listener: string, log: Logger, discarded: number): void {
  if (discarded === 0) return;
  env.metrics.starttlsInjections.inc({ listener });
  log.warn({ event: 'starttls.injection', bytes: discarded }, 'plaintext pipelined after STARTTLS discarded');
}
