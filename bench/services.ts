// The servers `npm run bench` measures, each its own process on free loopback ports in a temp
// dir: Dovecot tuned for throughput (through the test helper), redis-server, nginx's mail
// proxy, and mailgate (dist/cli.js) with the memory or the Redis store. Never touches the
// machine's own services or standard ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { startDovecot, type DovecotInstance, type DovecotOptions, type DovecotUser } from '../test/helpers/dovecot.js';
import { freePorts, waitForPort } from '../test/helpers/ports.js';
import { until } from '../test/helpers/until.js';
import { childPids } from './procstat.js';

/** Long-lived login processes, auth cache, no failure delay (the helper already sets
 *  auth_failure_delay = 0 and switches off the anvil auth penalty), mail processes that
 *  serve many sessions (one uid for every user), no per-user connection cap. */
function dovecotTuning(): string {
  const cpus = os.availableParallelism();
  return `
auth_cache_size = 10M
auth_cache_ttl = 1h
auth_cache_negative_ttl = 1h
auth_verbose = no
default_client_limit = 20000
default_process_limit = 20000
default_vsz_limit = 2G
service imap-login {
  service_count = 0
  process_min_avail = ${cpus}
  client_limit = 10000
}
service pop3-login {
  service_count = 0
  process_min_avail = ${cpus}
  client_limit = 10000
}
service imap {
  service_count = 0
  process_min_avail = ${cpus}
  client_limit = 2000
  process_limit = 64
}
service pop3 {
  service_count = 0
  process_min_avail = ${cpus}
  client_limit = 2000
  process_limit = 64
}
service auth {
  client_limit = 20000
}
service anvil {
  client_limit = 20000
}
protocol imap {
  mail_max_userip_connections = 1000000
}
protocol pop3 {
  mail_max_userip_connections = 1000000
}
`;
}

export function benchUsers(n: number): DovecotUser[] {
  return Array.from({ length: n }, (_, i) => ({ user: `bench${i}`, pass: `pass-${i}-bench` }));
}

/** `policy`: this Dovecot asks an auth policy server about every login (the helper's
 *  auth_policy_* lines), otherwise tuned the same. */
export function startTunedDovecot(users: DovecotUser[], policy?: DovecotOptions['policy']): Promise<DovecotInstance> {
  return startDovecot({ users, extraConf: dovecotTuning(), ...(policy ? { policy } : {}) });
}

export interface Proc {
  name: string;
  pid: number;
  /** Every pid whose CPU and memory count for this server (nginx: master and workers). */
  pids(): number[];
  ports: { imap: number; pop3: number; smtp?: number };
  /** mailgate in policy-server mode: the policy endpoint's port; with policyServer or admin, the admin endpoint's (/metrics). */
  policyPort?: number;
  adminPort?: number;
  stop(): Promise<void>;
}

async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

async function started(child: ChildProcess, ports: number[], what: string, log: () => string): Promise<void> {
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${what} exited at start (${code}):\n${log()}`))));
  exited.catch(() => undefined);
  await Promise.race([Promise.all(ports.map((p) => waitForPort(p))), exited]);
}

/** nginx from Debian with libnginx-mod-mail: a plain mail proxy whose auth_http is a static
 *  location in its own http block (every login OK, to Dovecot), so it does no limiting; or,
 *  given `authHttp` (a URL such as mailgate's policy endpoint /nginx), asking that instead. */
export async function startNginx(dir: string, dovecot: DovecotInstance, authHttp?: string): Promise<Proc> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const [imap, pop3, auth] = (await freePorts(3)) as [number, number, number];
  const root = os.userInfo().uid === 0;
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp/${t};`).join('\n');
  const conf = `
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
${root ? 'user root;' : ''}
worker_processes auto;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events {
  worker_connections 19000;
}
http {
  access_log off;
${temps}
  server {
    listen 127.0.0.1:${auth};
    location = /auth-imap {
      add_header Auth-Status OK;
      add_header Auth-Server 127.0.0.1;
      add_header Auth-Port ${dovecot.ports.imap};
      return 204;
    }
    location = /auth-pop3 {
      add_header Auth-Status OK;
      add_header Auth-Server 127.0.0.1;
      add_header Auth-Port ${dovecot.ports.pop3};
      return 204;
    }
  }
}
mail {
  server_name localhost;
  ssl_certificate ${dovecot.cert.certPath};
  ssl_certificate_key ${dovecot.cert.keyPath};
  timeout 30m;
  proxy on;
  proxy_pass_error_message on;
  server {
    listen 127.0.0.1:${imap};
    protocol imap;
    starttls on;
    auth_http ${authHttp ?? `127.0.0.1:${auth}/auth-imap`};
  }
  server {
    listen 127.0.0.1:${pop3};
    protocol pop3;
    starttls on;
    pop3_auth plain;
    auth_http ${authHttp ?? `127.0.0.1:${auth}/auth-pop3`};
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const child = spawn('/usr/sbin/nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const log = () => stderr + safeRead(join(dir, 'error.log'));
  await started(child, [imap, pop3, auth], 'nginx', log);
  const pid = child.pid!;
  return { name: 'nginx', pid, pids: () => [pid, ...childPids(pid)], ports: { imap, pop3 }, stop: () => stopChild(child) };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export interface MailgateOptions {
  name: string;
  dir: string;
  dovecot: DovecotInstance;
  redisUrl?: string;
  /** node --cpu-prof into this directory (the profile is written when mailgate exits). */
  profileDir?: string;
  /** limits.* keys that replace the benchmark's defaults (rules, knownGood, …). */
  limits?: Record<string, unknown>;
  /** Another build's dist/ folder (with node_modules reachable from it), to measure a
   *  baseline in the same run as this one (`npm run bench -- --baseline=DIR`). */
  dist?: string;
  /** Worker processes (config `workers`); default 1, one process as before worker mode, so
   *  the figures stay comparable with earlier runs. */
  workers?: number;
  /** Policy-server mode only (no listeners): policyServer on a free port, its nginx
   *  backends as given (e.g. {imap: 'imap'}); and the admin endpoint, for its counters. */
  policyServer?: { nginx?: Record<string, string> };
  /** The IMAP listener expects a PROXY header (proxyProtocol: true), from loopback
   *  (limits.trustedProxies 127.0.0.0/8): clients can then be any address, e.g. the public
   *  networks a GeoIP database maps, which loopback sources never are. */
  proxyProtocol?: boolean;
  /** The admin endpoint on a free port (its /metrics), as policy-server mode has. */
  admin?: boolean;
  /** A plaintext submission listener (ports.smtp) in front of Dovecot's submission service. */
  smtp?: boolean;
}

/** Limits as a deployment would set them (README's worked example), with the aggregate
 *  attempt limits raised so the benchmark's own traffic is never refused. */
export function mailgateRules() {
  return [
    { name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1_000_000_000, window: '1h' },
    { name: 'user-logins', key: 'user', count: 'attempts', limit: 1_000_000_000, window: '1h' },
    { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m', block: '30m' },
    { name: 'pair-failures', key: 'ip+user', count: 'failures', limit: 5, window: '15m', block: '1h' },
  ];
}

/** The README's anti-lockout setup, as written there: known-good pairs, the fail2ban-style rule
 *  with growth and a tarpit, one user guessed from many IPs, one IP spraying many users. */
export function antiLockoutLimits() {
  return {
    knownGood: { ttl: '14d' },
    dedupeFailures: true,
    rules: [
      { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m', block: '30m', blockGrowth: 2, blockMax: '1d', delay: { base: '1s', max: '15s' } },
      { name: 'user-spread', key: 'user', count: 'failures', distinct: 'ip', limit: 5, window: '1h', block: '1h' },
      { name: 'spray', key: 'ip', count: 'failures', distinct: 'user', limit: 5, window: '1h', block: '1h' },
    ],
  };
}

/** mailgate as a separate process: `node dist/cli.js --config <file>`. */
export async function startMailgate(o: MailgateOptions): Promise<Proc> {
  mkdirSync(o.dir, { recursive: true });
  const [imap, pop3, policyPort, adminPort, smtp] = (await freePorts(5)) as [number, number, number, number, number];
  const policy = o.policyServer;
  // A build from before worker mode (no dist/cluster) knows no `workers` key.
  const knowsWorkers = existsSync(join(o.dist ?? 'dist', 'cluster'));
  const cfg = {
    ...(knowsWorkers ? { workers: o.workers ?? 1 } : {}),
    listeners: policy
      ? []
      : [
          { name: 'imap', protocol: 'imap', listen: `127.0.0.1:${imap}`, tls: 'starttls', requireTls: false, backend: 'imap', ...(o.proxyProtocol ? { proxyProtocol: true } : {}) },
          { name: 'pop3', protocol: 'pop3', listen: `127.0.0.1:${pop3}`, tls: 'starttls', requireTls: false, backend: 'pop3' },
          ...(o.smtp ? [{ name: 'smtp', protocol: 'smtp', listen: `127.0.0.1:${smtp}`, tls: 'none', backend: 'smtp' }] : []),
        ],
    ...(policy ? { policyServer: { listen: `127.0.0.1:${policyPort}`, nginx: policy.nginx ?? {} } } : {}),
    ...(policy || o.admin ? { admin: { listen: `127.0.0.1:${adminPort}` } } : {}),
    tls: { cert: o.dovecot.cert.certPath, key: o.dovecot.cert.keyPath },
    backends: {
      imap: { host: '127.0.0.1', port: o.dovecot.ports.imap },
      pop3: { host: '127.0.0.1', port: o.dovecot.ports.pop3 },
      ...(o.smtp ? { smtp: { host: '127.0.0.1', port: o.dovecot.ports.submission } } : {}),
    },
    store: o.redisUrl ? { type: 'redis', redis: { url: o.redisUrl, timeout: '250ms', onError: 'local' } } : { type: 'memory' },
    limits: {
      keySecret: 'bench-key-secret-0123456789abcdef',
      rules: mailgateRules(),
      // The idle-connection figures hold 10,000 connections from a few hundred addresses.
      connections: { perIp: 1_000_000, total: 1_000_000 },
      ...(o.proxyProtocol ? { trustedProxies: ['127.0.0.0/8'] } : {}),
      ...o.limits,
    },
    timeouts: { preauth: '30m', shutdown: '1s' },
    log: { level: 'info' },
  };
  const confPath = join(o.dir, `${o.name}.yaml`);
  writeFileSync(confPath, JSON.stringify(cfg, null, 2)); // JSON is YAML
  const logPath = join(o.dir, `${o.name}.log`);
  const nodeArgs = o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir] : [];
  const child = spawn(process.execPath, [...nodeArgs, o.dist ? join(o.dist, 'cli.js') : 'dist/cli.js', '--config', confPath], { stdio: ['ignore', openSync(logPath, 'w'), 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await started(child, policy ? [policyPort, adminPort] : [imap, pop3], `mailgate (${o.name})`, () => stderr + safeRead(logPath).slice(-4000));
  // One worker accepting is not all of them: the primary says when every worker listens.
  if ((o.workers ?? 1) > 1) await until(() => safeRead(logPath).includes('"event":"proxy.start"'), `${o.name}: every worker started`);
  const pid = child.pid!;
  // With workers: the primary and every worker (restarted ones too, read at each call).
  const ports = policy ? { imap: 0, pop3: 0 } : { imap, pop3, ...(o.smtp ? { smtp } : {}) };
  return { name: o.name, pid, pids: () => [pid, ...childPids(pid)], ports, ...(policy ? { policyPort } : {}), ...(policy || o.admin ? { adminPort } : {}), stop: () => stopChild(child) };
}

/** The Node floor (bench/floor-proxy.mjs): the least a Node process does to pass an IMAP login
 *  through, plaintext or after STARTTLS, as a reference for mailgate's CPU per login; or
 *  (`refuse`) to turn a connection away. Not a product. */
export async function startFloor(dovecot: DovecotInstance, mode: 'relay' | 'refuse' = 'relay'): Promise<Proc> {
  const [imap] = (await freePorts(1)) as [number];
  const script = new URL('./floor-proxy.mjs', import.meta.url).pathname;
  // The relay offers STARTTLS with the bench's certificate (the handshake floor).
  const extra = mode === 'refuse' ? ['refuse'] : [dovecot.cert.certPath, dovecot.cert.keyPath];
  const child = spawn(process.execPath, [script, String(imap), String(dovecot.ports.imap), ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await started(child, [imap], 'floor proxy', () => stderr);
  const pid = child.pid!;
  return { name: 'node-floor', pid, pids: () => [pid], ports: { imap, pop3: 0 }, stop: () => stopChild(child) };
}
