// Composition root: config in, logger, store, policy and listeners out. No logic of its own.
import tls from 'node:tls';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import { KeyBuilder } from './limits/keys.js';
import { Policy } from './limits/policy.js';
import { createLogger, type Logger } from './logging/logger.js';
import type { MailProtocol } from './protocols/protocol.js';
import { protocolFor } from './protocols/registry.js';
import { CapabilityCache } from './backend/capabilities.js';
import { Listener } from './server/listener.js';
import type { SessionEnv } from './server/session.js';
import { loadServerTls } from './server/tls.js';
import { createStore } from './stores/factory.js';
import type { LimitStore } from './stores/store.js';

/** How long start-up waits for a shared store before going on without it. */
const STORE_START_WAIT_MS = 3_000;

export interface Proxy {
  listeners: Listener[];
  /** Bound addresses by listener name (useful with port 0 in tests). */
  addresses: Record<string, { host: string; port: number }>;
  store: LimitStore;
  stop(): Promise<void>;
}

/** One probe per backend whose protocol must mirror what the backend advertises. */
function probeTargets(cfg: Config) {
  const seen = new Map<string, { backend: string; cfg: Config['backends'][string]; protocol: MailProtocol; hostname: string }>();
  for (const l of cfg.listeners) {
    const protocol = protocolFor(l.protocol);
    if (protocol?.probeCapabilities && !seen.has(l.backend)) {
      seen.set(l.backend, { backend: l.backend, cfg: cfg.backends[l.backend]!, protocol, hostname: l.hostname });
    }
  }
  return [...seen.values()];
}

export async function startProxy(cfg: Config, opts: { log?: Logger; clock?: Clock } = {}): Promise<Proxy> {
  const log = opts.log ?? createLogger(cfg.log.level);
  const clock = opts.clock ?? systemClock;
  const store = createStore(cfg.store, clock, log);
  // Give a shared store a moment to connect so the first logins are counted where they
  // should be; if it cannot, the configured onError applies until it can.
  await store.ready?.(STORE_START_WAIT_MS);
  const policy = new Policy(cfg.limits, store, new KeyBuilder(cfg.limits.keySecret));
  const tlsOpts = await loadServerTls(cfg.tls, log);
  const capabilities = new CapabilityCache(probeTargets(cfg), log);
  await capabilities.start();
  const env: SessionEnv = {
    policy,
    clock,
    tls: tlsOpts ? tls.createSecureContext(tlsOpts) : null,
    maxBadCommands: cfg.limits.maxBadCommands,
    maxAuthAttempts: cfg.limits.maxAuthAttempts,
    timeouts: cfg.timeouts,
    capabilities: (backend) => capabilities.get(backend),
  };
  const listeners: Listener[] = [];
  const addresses: Proxy['addresses'] = {};
  try {
    for (const l of cfg.listeners) {
      const protocol = protocolFor(l.protocol);
      if (!protocol) throw new Error(`listeners.${l.name}: protocol ${l.protocol} is not implemented yet`);
      const listener = new Listener(l, protocol, () => cfg.backends[l.backend]!, () => env, log);
      const addr = await listener.listen();
      addresses[l.name] = { host: addr.address, port: addr.port };
      listeners.push(listener);
    }
  } catch (err) {
    capabilities.stop();
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
  log.info({ event: 'proxy.start', listeners: listeners.length, store: cfg.store.type }, 'mailgate started');
  return {
    listeners,
    addresses,
    store,
    async stop() {
      const closing = Promise.all(listeners.map((l) => l.close()));
      for (const l of listeners) {
        l.shutdownSessions();
      }
      await closing;
      capabilities.stop();
      await store.close();
      log.info({ event: 'proxy.stop' }, 'mailgate stopped');
    },
  };
}
