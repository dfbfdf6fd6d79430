// Backend pools: which server of a backend a login goes to. Unhealthy servers (a failed
// connect, or the periodic TCP check) are skipped until they answer again; with sticky: user
// the order is rendezvous-hashed on the user, so adding a server moves few users.
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { BackendConfig, ServerTarget } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';

/** A TCP health check gives up after this long. */
const HEALTH_CONNECT_MS = 2_000;

const id = (s: { host: string; port: number }) => `${s.host}:${s.port}`;

function score(user: string, server: string): number {
  return createHash('sha256').update(user).update('\0').update(server).digest().readUInt32BE(0);
}

/** Does host:port accept a TCP connection within timeoutMs? (Health checks, /readyz.) */
export function tcpReachable(host: string, port: number, timeoutMs = HEALTH_CONNECT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** One server of a backend, ready to dial. */
export function serverTarget(cfg: BackendConfig, server: { host: string; port: number }): ServerTarget {
  const { servers: _servers, sticky: _sticky, healthCheck: _health, probeInterval: _probe, ...conn } = cfg;
  return { ...conn, host: server.host, port: server.port };
}

export class BackendPools {
  /** Servers known to be down ("host:port"). Unknown means healthy. */
  private readonly down = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  /** Rotation of pools without stickiness: each login starts one server further. */
  private turn = 0;

  constructor(
    private readonly backends: () => Record<string, BackendConfig>,
    private readonly log: Logger,
  ) {}

  /** The servers to try for one login, in order: healthy ones first (sticky: by the user's
   *  rendezvous hash, else rotating), then, as a last resort, those marked down. */
  candidates(name: string, user: string): ServerTarget[] {
    const cfg = this.backends()[name]!;
    let order = [...cfg.servers];
    if (order.length > 1) {
      if (cfg.sticky === 'user') order.sort((a, b) => score(user, id(b)) - score(user, id(a)));
      else {
        const shift = this.turn++ % order.length;
        order = [...order.slice(shift), ...order.slice(0, shift)];
      }
    }
    const up = order.filter((s) => !this.down.has(id(s)));
    const down = order.filter((s) => this.down.has(id(s)));
    return [...up, ...down].map((s) => serverTarget(cfg, s));
  }

  healthy(server: { host: string; port: number }): boolean {
    return !this.down.has(id(server));
  }

  markDown(server: { host: string; port: number }, why: string): void {
    if (this.down.has(id(server))) return;
    this.down.add(id(server));
    this.log.warn({ event: 'backend.down', server: id(server), error: why }, 'backend server unreachable; skipped until it answers');
  }

  markUp(server: { host: string; port: number }): void {
    if (this.down.delete(id(server))) this.log.info({ event: 'backend.up', server: id(server) }, 'backend server reachable again');
  }

  /** Periodic TCP checks of every pool server, at the shortest configured interval. */
  start(): void {
    const every = Math.min(...Object.values(this.backends()).map((b) => b.healthCheck));
    if (!Number.isFinite(every)) return;
    this.timer = setInterval(() => void this.check(), every);
    this.timer.unref();
  }

  async check(): Promise<void> {
    const servers = Object.values(this.backends()).flatMap((b) => (b.servers.length > 1 || this.down.size ? b.servers : []));
    await Promise.all(
      servers.map(async (s) => {
        if (await tcpReachable(s.host, s.port)) this.markUp(s);
        else this.markDown(s, 'health check: no TCP connection');
      }),
    );
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
