// What the HTTP endpoints need from a config, for one process (main.ts) and for worker mode's
// primary (cluster/primary.ts) alike: the admin token, readiness, and the policy server on
// the running engine.
import { readFileSync } from 'node:fs';
import { tcpReachable } from './backend/pool.js';
import type { Config } from './config/schema.js';
import { MailgateError } from './errors.js';
import type { Logger } from './logging/logger.js';
import { PolicyServer } from './policy-server/server.js';
import type { AuthDeps } from './server/auth-path.js';

/** /readyz: a backend counts as healthy when it accepts a TCP connection this fast. */
const READY_PROBE_MS = 1_000;

export function adminToken(cfg: Config): string | null {
  if (!cfg.admin) return null;
  if (cfg.admin.token) return cfg.admin.token;
  if (!cfg.admin.tokenFile) return null;
  try {
    return readFileSync(cfg.admin.tokenFile, 'utf8').trim();
  } catch (err) {
    throw new MailgateError('MG_CONFIG_READ', `admin.tokenFile: ${(err as Error).message}`);
  }
}

/** /readyz: at least one server of every backend accepts connections. */
export async function backendsReachable(cfg: Config): Promise<boolean> {
  const backends = await Promise.all(
    Object.values(cfg.backends).map(async (b) => (await Promise.all(b.servers.map((s) => tcpReachable(s.host, s.port, READY_PROBE_MS)))).some(Boolean)),
  );
  return backends.every(Boolean);
}

/** The policy server of one process (or of worker mode's primary): the engine of the running
 *  config; the settings of its policyServer section (the started one, if a reload removes it). */
export function startPolicyServer(env: () => AuthDeps, cfg: () => Config, initial: Config, log: Logger): PolicyServer {
  return new PolicyServer(
    {
      env,
      config: () => cfg().policyServer ?? initial.policyServer!,
      backend: (name) => cfg().backends[name],
    },
    log,
  );
}
