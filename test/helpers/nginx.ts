// Starts a real nginx (Debian's, with libnginx-mod-mail) as a mail proxy for integration tests:
// its own prefix, pid and error log in a temp dir, plaintext IMAP, POP3 and SMTP servers on free
// loopback ports, every login asked of the caller's auth_http. Never touches the system nginx.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { retryOnPortClash, spawnDaemon } from './dovecot.js';
import { freePorts } from './ports.js';

export interface NginxOptions {
  /** auth_http: where nginx asks about every login, e.g. `http://127.0.0.1:4321/nginx`. */
  authHttp: string;
  /** Sent with every auth_http request as `X-API-Key` (auth_http_header). */
  apiKey?: string;
}

export interface NginxInstance {
  dir: string;
  ports: { imap: number; pop3: number; smtp: number };
  /** nginx's error log (level info: one line per mail session and auth_http trouble). */
  readLog(): string;
  stop(): Promise<void>;
}

const MAIL_MODULE = '/usr/lib/nginx/modules/ngx_mail_module.so';

/** The mail block: one server per protocol. SMTP logs in to the backend itself with AUTH PLAIN
 *  (proxy_smtp_auth, nginx ≥ 1.19.4) instead of XCLIENT, as a submission backend expects. */
function mailConf(o: NginxOptions, ports: NginxInstance['ports']): string {
  const server = (protocol: string, port: number, lines: string[]) =>
    [`  server {`, `    listen 127.0.0.1:${port};`, `    protocol ${protocol};`, ...lines.map((l) => `    ${l}`), '  }'].join('\n');
  return [
    'mail {',
    '  server_name localhost;',
    `  auth_http ${o.authHttp};`,
    ...(o.apiKey ? [`  auth_http_header X-API-Key ${o.apiKey};`] : []),
    '  proxy on;',
    '  proxy_pass_error_message on;',
    '  imap_auth plain login;',
    '  pop3_auth plain;',
    '  smtp_auth login plain;',
    server('imap', ports.imap, []),
    server('pop3', ports.pop3, []),
    server('smtp', ports.smtp, ['proxy_smtp_auth on;', 'xclient off;']),
    '}',
  ].join('\n');
}

/** Starts nginx; a start that lost one of its free ports meanwhile is tried again. */
export function startNginx(opts: NginxOptions): Promise<NginxInstance> {
  return retryOnPortClash(() => startNginxOnce(opts));
}

async function startNginxOnce(opts: NginxOptions): Promise<NginxInstance> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-nginx-'));
  const [imap, pop3, smtp] = (await freePorts(3)) as [number, number, number];
  const ports = { imap, pop3, smtp };
  const errorLog = join(dir, 'error.log');
  const conf = [
    `load_module ${MAIL_MODULE};`,
    // As root the workers would drop to nobody, who cannot write the temp dir's log.
    ...(os.userInfo().uid === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${errorLog} info;`,
    'daemon off;',
    'master_process on;',
    'events {',
    '  worker_connections 256;',
    '}',
    mailConf(opts, ports),
    '',
  ].join('\n');
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const argv = ['/usr/sbin/nginx', '-p', dir, '-e', errorLog, '-c', confPath];
  const { readLog, stop } = await spawnDaemon('nginx', argv, dir, errorLog, Object.values(ports));
  return { dir, ports, readLog, stop };
}
