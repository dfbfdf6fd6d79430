// Backend configs for tests that call a backend replay directly, made by the config parser
// from a minimal document: the schema's defaults apply, so a new backend field never has to
// be spelled out here. Pure.
import { parseConfig } from '../../src/config/load.js';
import type { BackendConfig } from '../../src/config/schema.js';

/** The parsed backend for `doc` (host, port and any backend option, as in a config file). */
export function parseBackend(doc: Record<string, unknown>): BackendConfig {
  // The schema wants a listener that uses the backend; its protocol does not shape the backend.
  const cfg = parseConfig({ listeners: [{ name: 'l', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }], backends: { b: doc } });
  return cfg.backends.b!;
}
