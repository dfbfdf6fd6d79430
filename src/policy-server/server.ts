// The policy HTTP endpoint (policyServer): POST /dovecot?command=allow|report for Dovecot's
// auth policy, GET /nginx for nginx's auth_http. An API key when configured; a bounded body;
// every answer within policyServer.timeout (nginx: plus the backend login's own deadline);
// anything malformed gets a 400 and nothing else. No credential, key or body is ever logged.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sameSecret } from '../admin/server.js';
import { canonicalIp, parseHostPort } from '../config/address.js';
import type { PolicyServerConfig } from '../config/policy-server-schema.js';
import type { Logger } from '../logging/logger.js';
import type { AuthDeps } from '../server/auth-path.js';
import { DovecotPolicy, parseDovecot, type PolicyAnswer } from './dovecot.js';
import { answerNginx, parseNginx, type NginxAnswer, type NginxSettings } from './nginx.js';

/** Dovecot's request is a small JSON object; anything this large is not one. */
const MAX_BODY_BYTES = 16 * 1024;
/** How often allows without a report are looked for. */
const SWEEP_MS = 5_000;

export interface PolicyServerDeps {
  /** The running engine (a reload swaps it). */
  env(): AuthDeps;
  config(): PolicyServerConfig;
  /** nginx: the backend's servers, for SMTP without AUTH; and each backend's login deadline. */
  backend(name: string): { servers: { host: string; port: number }[]; loginTimeout: number } | undefined;
}

class BadRequest extends Error {}


function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        reject(new BadRequest(`body over ${MAX_BODY_BYTES} bytes`));
      } else parts.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/** `work` settled within `ms`, or `late` (work goes on; what it returns then is dropped). */
function within<T>(work: Promise<T>, ms: number, late: () => T): Promise<{ value: T; late: boolean }> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<{ value: T; late: boolean }>((r) => (timer = setTimeout(() => r({ value: late(), late: true }), ms)));
  const done = work.then((value) => ({ value, late: false }));
  done.catch(() => undefined); // a failure after the deadline is the caller's to log
  return Promise.race([done, deadline]).finally(() => clearTimeout(timer));
}

export class PolicyServer {
  private readonly server: http.Server;
  readonly dovecot: DovecotPolicy;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: PolicyServerDeps,
    private readonly log: Logger,
  ) {
    const settings = () => {
      const c = deps.config();
      return { maxWaitMs: c.maxWait, reportTimeoutMs: c.reportTimeout };
    };
    this.dovecot = new DovecotPolicy(() => deps.env(), settings, log);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.requestTimeout = 10_000;
    this.server.headersTimeout = 5_000;
  }

  private count(mode: string, answer: string): void {
    this.deps.env().metrics.policyRequests.inc({ mode, answer });
  }

  private send(res: http.ServerResponse, status: number, headers: Record<string, string>, body = ''): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'cache-control': 'no-store', ...headers });
    res.end(body);
  }

  private refuse(res: http.ServerResponse, mode: string, status: 400 | 401 | 404 | 405, why: string): void {
    this.count(mode, status === 401 ? 'unauthorized' : 'bad-request');
    this.log.info({ event: 'policy.bad-request', mode, status, reason: why }, 'policy request refused');
    // The body may not have been read: the connection cannot be reused.
    this.send(res, status, { 'content-type': 'text/plain', connection: 'close' }, `${why}\n`);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = performance.now();
    const [path, query = ''] = (req.url ?? '/').split('?', 2) as [string, string?];
    const mode = path === '/dovecot' ? 'dovecot' : path === '/nginx' ? 'nginx' : 'other';
    try {
      if (mode === 'other') return this.refuse(res, mode, 404, 'no such path: use /dovecot or /nginx');
      const key = this.deps.config().apiKey;
      const given = req.headers['x-api-key'];
      if (key !== undefined && (typeof given !== 'string' || !sameSecret(given, key))) return this.refuse(res, mode, 401, 'X-API-Key required');
      if (mode === 'dovecot') await this.serveDovecot(req, res, new URLSearchParams(query).get('command'));
      else await this.serveNginx(req, res);
    } catch (err) {
      if (err instanceof BadRequest) return this.refuse(res, mode, 400, err.message);
      this.log.error({ event: 'policy.error', mode, err: (err as Error).stack ?? String(err) }, 'policy request failed');
      this.send(res, 500, { 'content-type': 'text/plain' }, 'internal error\n');
    } finally {
      this.deps.env().metrics.policySeconds.observe({ mode }, (performance.now() - t0) / 1000);
    }
  }

  private async serveDovecot(req: http.IncomingMessage, res: http.ServerResponse, command: string | null): Promise<void> {
    if (req.method !== 'POST') return this.refuse(res, 'dovecot', 405, 'POST expected');
    if (command !== 'allow' && command !== 'report') return this.refuse(res, 'dovecot', 400, 'command: expected allow or report');
    let body: unknown;
    const raw = await readBody(req);
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new BadRequest('body: expected JSON');
    }
    const r = parseDovecot(body);
    if (typeof r === 'string') throw new BadRequest(r);
    const work = command === 'allow' ? this.dovecot.allow(r) : this.dovecot.report(r);
    const { value, late } = await within<PolicyAnswer>(work, this.deps.config().timeout, () => ({ status: 0, msg: command === 'allow' ? 'ok' : 'recorded' }));
    if (late) this.lateAnswer('dovecot', work);
    this.count('dovecot', late ? 'late' : command === 'report' ? 'report' : value.status < 0 ? 'refuse' : value.status > 0 ? 'delay' : 'allow');
    this.send(res, 200, { 'content-type': 'application/json' }, JSON.stringify(value));
  }

  private async serveNginx(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'GET') return this.refuse(res, 'nginx', 405, 'GET expected');
    const r = parseNginx(req.headers);
    if (typeof r === 'string') throw new BadRequest(r);
    const c = this.deps.config();
    const settings: NginxSettings = {
      maxWaitMs: c.maxWait,
      backend: (p) => c.nginx[p],
      firstServer: (b) => this.deps.backend(b)?.servers[0],
    };
    const local = { ip: canonicalIp(req.socket.localAddress) ?? '127.0.0.1', port: req.socket.localPort ?? 0 };
    const work = answerNginx(this.deps.env(), settings, this.log, r, local);
    // The store's part is bounded by timeout, the backend login by its own loginTimeout.
    const backend = c.nginx[r.protocol];
    const ms = c.timeout + (backend ? (this.deps.backend(backend)?.loginTimeout ?? 0) : 0);
    const unavailable: NginxAnswer = { 'Auth-Status': 'Temporary authentication failure; try again later', 'Auth-Wait': '1', ...(r.protocol === 'smtp' ? { 'Auth-Error-Code': '454 4.7.0' } : {}) };
    const { value, late } = await within(work, ms, () => ({ verdict: 'unavailable' as const, headers: unavailable }));
    if (late) this.lateAnswer('nginx', work);
    this.count('nginx', late ? 'late' : value.verdict);
    this.send(res, 200, value.headers);
  }

  private lateAnswer(mode: string, work: Promise<unknown>): void {
    this.log.warn({ event: 'policy.late', mode }, 'policy answer not ready in time: the login goes on without it');
    work.catch((err: Error) => this.log.error({ event: 'policy.error', mode, err: err.message }, 'late policy request failed'));
  }

  async start(): Promise<AddressInfo> {
    const { host, port } = parseHostPort(this.deps.config().listen)!;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_MS).unref();
    const addr = this.server.address() as AddressInfo;
    this.log.info({ event: 'policy.start', address: addr.address, port: addr.port }, 'policy server listening (/dovecot, /nginx)');
    return addr;
  }

  /** Allows whose report never came give back their reservations (one line per sweep). */
  async sweep(): Promise<number> {
    const n = await this.dovecot.sweep();
    if (n > 0) this.log.warn({ event: 'policy.unreported', logins: n, reportTimeoutMs: this.deps.config().reportTimeout }, 'Dovecot allowed logins without reporting their result (auth_policy_report_after_auth must be yes): their reservations were given back');
    return n;
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
