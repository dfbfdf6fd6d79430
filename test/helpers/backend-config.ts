// Backend configs for tests that call a backend replay directly, made by the config parser
// from a minimal document: the schema's defaults apply, so a new backend field never has to
// be spelled out here. Pure.
import { parseConfig } from '../../src/config/load.js';
import { serverTarget } from '../../src/backend/pool.js';
import type { ServerTarget } from '../../src/config/schema.js';

/** The server to dial for backend `doc` (host, port and any backend option, as in a config
 *  file): its first server, as the pool would hand it to a replay. */
export function parseBackend(doc: Record<string, unknown>): ServerTarget {
  // The schema wants a listener that uses the backend; its protocol does not shape the backend.
  const cfg = parseConfig({ listeners: [{ name: 'l', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }], backends: { b: doc } });
  const b = cfg.backends.b!;
  return serverTarget(b, b.servers[0]!);
}
