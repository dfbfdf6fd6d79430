// The admin HTTP endpoint: bearer-token auth (constant-time compare), routing, problem+json
// errors (RFC 9457), one log line per request without tokens or query values.
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../config/address.js';
import type { AttackMode } from '../limits/attack-mode.js';
import type { Groups } from '../groups/groups.js';
import type { Ban } from '../integrations/ban-feed.js';
import { banlistJson, banlistText } from '../integrations/banlist.js';
import type { Policy } from '../limits/policy.js';
import type { AccountHistory } from '../limits/history.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { LimitStore } from '../stores/store.js';
import { serveConsole } from './console.js';
import { sessionsRoute, type SessionControl } from './sessions.js';
import { nodesRoute } from './nodes.js';
import { unblockUserRoute } from './unblock.js';
import { sendingRoute } from './sending.js';
import type { SendingLimits } from '../limits/sending.js';
import type { NodeList } from '../stores/node-registry.js';
import { AdminError, attackModeView, blockSubject, forceAttackMode, limitsOf, listBlocks, resetSubject, subject, subjectFromPath } from './api.js';

export interface AdminDeps {
  policy(): Policy;
  store: LimitStore;
  /** This process's registry, or in worker mode the primary's aggregate of every worker's. */
  metrics: { registry: Pick<Metrics['registry'], 'metrics' | 'contentType'> };
  /** Readiness checks by name; all must be true. */
  ready(): Promise<Record<string, boolean>>;
  /** Current token; null: no token required (loopback only, enforced by the config). */
  token(): string | null;
  /** The attack-mode detector; absent: /api/v1/attack-mode answers 404. */
  attackMode?(): AttackMode;
  /** Address groups of the running config. */
  groups?(): Groups | undefined;
  /** The blocks a firewall may enforce (integrations/ban-feed.ts). */
  banlist?(): Promise<Ban[]>;
  /** Login history of the running config (limits/history.ts). */
  history?(): AccountHistory | undefined;
  /** Spliced sessions: listed, and kicked on every instance. */
  sessions?: SessionControl;
  /** Sending limits of the running config (limits.sending; null: not set). */
  sending?(): SendingLimits | null | undefined;
  /** Every live instance of the deployment (stores/node-registry.ts). */
  nodes?: { list(): Promise<NodeList> };
}

/** A secret compared in constant time (of equal-length digests, so the length leaks nothing
 *  either): the admin token, the policy server's API key. */
export const sameSecret = (given: string, expected: string): boolean => timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(expected).digest());

function authorized(req: http.IncomingMessage, token: string | null): boolean {
  if (token === null) return true;
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  return !!m && sameSecret(m[1]!, token);
}

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(text);
}

function problem(res: http.ServerResponse, status: number, title: string, detail: string): void {
  send(res, status, { type: 'about:blank', title, status, detail }, 'application/problem+json');
}

async function route(req: http.IncomingMessage, res: http.ServerResponse, deps: AdminDeps, log: Logger): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname;
  // The console's page and files need no token: the API calls the page makes do.
  if (await serveConsole(req, res, path)) return;
  if (path === '/healthz' && req.method === 'GET') return send(res, 200, { status: 'ok' });
  if (path === '/readyz' && req.method === 'GET') {
    const checks = await deps.ready();
    return send(res, Object.values(checks).every(Boolean) ? 200 : 503, { ready: Object.values(checks).every(Boolean), checks });
  }
  if (!authorized(req, deps.token())) {
    res.setHeader('www-authenticate', 'Bearer');
    return problem(res, 401, 'Unauthorized', 'a valid bearer token is required');
  }
  if (path === '/metrics' && req.method === 'GET') {
    return send(res, 200, await deps.metrics.registry.metrics(), deps.metrics.registry.contentType);
  }
  if (path === '/api/v1/limits') {
    const s = subject({ ip: url.searchParams.get('ip'), user: url.searchParams.get('user') });
    // What the groups and databases say of the address: the rules narrow by it.
    const groups = s.ip !== undefined && deps.groups?.()?.active ? await deps.groups!()!.of(s.ip) : undefined;
    if (req.method === 'GET') {
      return send(res, 200, { limits: await limitsOf(deps.policy(), deps.store, s, groups), ...(groups ? { client: { groups: groups.names, asn: groups.asn, country: groups.country } } : {}) });
    }
    if (req.method === 'DELETE') return send(res, 200, { reset: await resetSubject(deps.policy(), deps.store, s, groups) });
    throw new AdminError(405, 'Method Not Allowed', 'GET or DELETE');
  }
  if ((path === '/api/v1/banlist.txt' || path === '/api/v1/banlist.json') && req.method === 'GET') {
    const bans = (await deps.banlist?.()) ?? [];
    if (path.endsWith('.json')) return send(res, 200, banlistJson(bans));
    return send(res, 200, banlistText(bans, new Date()), 'text/plain; charset=utf-8');
  }
  if (path === '/api/v1/groups' && req.method === 'GET') return send(res, 200, deps.groups?.()?.view() ?? { groups: [], geoip: [] });
  if (path === '/api/v1/history' && req.method === 'GET') {
    const user = subject({ user: url.searchParams.get('user') }).user!;
    const history = deps.history?.();
    if (!history) throw new AdminError(404, 'Not Found', 'no login history in this process');
    return send(res, 200, { userHash: deps.policy().keys.userHash(user), entries: await history.entries(user) });
  }
  if (path === '/api/v1/blocks' && req.method === 'GET') return send(res, 200, { blocks: await listBlocks(deps.store) });
  if (path === '/api/v1/blocks' && req.method === 'POST') {
    const s = subject({ ip: url.searchParams.get('ip'), user: url.searchParams.get('user') });
    return send(res, 201, await blockSubject(deps.policy(), s, url.searchParams.get('for'), url.searchParams.get('rule')));
  }
  if (path === '/api/v1/attack-mode') {
    const detector = deps.attackMode?.();
    if (!detector) throw new AdminError(404, 'Not Found', 'attack mode is not available in this process');
    if (req.method === 'GET') return send(res, 200, attackModeView(detector.status()));
    if (req.method !== 'POST') throw new AdminError(405, 'Method Not Allowed', 'GET or POST');
    const view = forceAttackMode(detector, url.searchParams.get('mode'));
    // The request line logs no query values; what an operator forced is worth its own line.
    log.warn({ event: 'admin.attack-mode', mode: view.forced ?? 'auto', active: view.active }, 'attack mode forced by the admin API');
    return send(res, 200, view);
  }
  const lifted = await unblockUserRoute(req.method, path, url.searchParams, deps.store);
  if (lifted) return send(res, 200, lifted);
  const one = /^\/api\/v1\/blocks\/([^/]+)$/.exec(path);
  if (one && req.method === 'DELETE') {
    const reset = await resetSubject(deps.policy(), deps.store, subjectFromPath(decodeURIComponent(one[1]!)));
    if (reset.length === 0) throw new AdminError(404, 'Not Found', 'no rule applies to that ip or user');
    return send(res, 200, { reset });
  }
  const sessions = await sessionsRoute(req.method, path, url.searchParams, deps.sessions);
  if (sessions) return send(res, sessions.status, sessions.body);
  const sending = await sendingRoute(req.method, path, url.searchParams, deps.sending?.());
  if (sending) return send(res, sending.status, sending.body);
  const nodes = await nodesRoute(req.method, path, deps.nodes);
  if (nodes) return send(res, 200, nodes);
  throw new AdminError(404, 'Not Found', `no route for ${req.method} ${path}`);
}

export class AdminServer {
  private readonly server: http.Server;

  constructor(
    private readonly listen: string,
    private readonly deps: AdminDeps,
    private readonly log: Logger,
  ) {
    this.server = http.createServer((req, res) => {
      const t0 = Date.now();
      route(req, res, deps, this.log)
        .catch((err: unknown) => {
          if (err instanceof AdminError) return problem(res, err.status, err.title, err.message);
          this.log.error({ event: 'admin.error', err: (err as Error).message }, 'admin request failed');
          return problem(res, 500, 'Internal Server Error', 'see the mailgate log');
        })
        .finally(() => {
          // Path only: query values (user names) and headers (tokens) stay out of the log.
          this.log.info({ event: 'admin.request', method: req.method, path: (req.url ?? '').split('?')[0], status: res.statusCode, ms: Date.now() - t0 }, 'admin request');
        });
    });
    this.server.requestTimeout = 10_000;
    this.server.headersTimeout = 5_000;
  }

  async start(): Promise<AddressInfo> {
    const { host, port } = parseHostPort(this.listen)!;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.log.info({ event: 'admin.start', address: addr.address, port: addr.port }, 'admin endpoint listening');
    return addr;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
