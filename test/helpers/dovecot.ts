// Starts a real Dovecot (Debian's package) for integration tests: a standalone config in a temp
// dir, IMAP/POP3/submission on free loopback ports, passwd-file users. Never touches the system
// instance or the standard ports.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts, waitForPort } from './ports.js';
import { RawClient } from './raw-client.js';
import { devCert, type TestCert } from './tls.js';
import { until } from './until.js';

export interface DovecotUser {
  user: string;
  pass: string;
  /** passwd-file extra fields (space-separated), e.g. `userdb_pop3_lock_session=yes`. */
  extra?: string;
}

export interface DovecotOptions {
  users?: DovecotUser[];
  /** SMTP server the submission service relays to (required for sending through submission). */
  relay?: { host: string; port: number };
  /** Extra lines appended to dovecot.conf. */
  extraConf?: string;
  /** Also offer XOAUTH2 and OAUTHBEARER, with tokens checked by Dovecot's oauth2 passdb
   *  against this RFC 7662 introspection endpoint (POST token=…; the JSON answer needs
   *  `active: true` and `username`). Passwords keep working for PLAIN and LOGIN only. */
  oauth2?: { introspectionUrl: string };
  /** Dovecot's own auth penalty as shipped (anvil: 2 s doubling per failure per client
   *  address, up to 15 s) and auth_failure_delay at its default (2 s). Off by default: it
   *  would slow every failure test, and mailgate is the one under test. */
  penalty?: boolean;
  /** login_trusted_networks: the peers whose ID x-originating-ip / XCLIENT Dovecot believes
   *  (and offers XCLIENT to). Default: all of loopback (127.0.0.0/8). */
  trustedNetworks?: string[];
  /** Ask an auth policy server (Dovecot 2.3 auth_policy_*) about every login: `url` is
   *  auth_policy_server_url (Dovecot appends ?command=allow|report), `apiKey` goes out as the
   *  X-API-Key header, `extra` lines are appended (e.g. `auth_policy_check_after_auth = no`). */
  policy?: { url: string; apiKey?: string; extra?: string };
}

export interface DovecotInstance {
  dir: string;
  host: string;
  ports: { imap: number; imaps: number; pop3: number; pop3s: number; submission: number; submissions: number };
  users: DovecotUser[];
  cert: TestCert;
  readLog(): string;
  /** Dovecot writes its log asynchronously (login processes → log process → file): open and
   *  close a connection from a barrier address (127.0.59.x, kept for this) and wait until its
   *  disconnect is logged, so everything said to Dovecot before has been written too. Returns
   *  the log from offset `from` on, without barrier lines. */
  settledLog(from?: number): Promise<string>;
  /** The log offset once everything already said to Dovecot is written: take it before an
   *  action and hand it to settledLog after. (`readLog().length` races the log process: a
   *  login answered a moment ago may be logged after the offset is taken.) */
  logMark(): Promise<number>;
  /** Dovecot's own auth penalty table (`doveadm penalty`, anvil's failures per client
   *  address): address → penalty count. Empty when the penalty is off. */
  penalties(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

let barriers = 0;

export const DEFAULT_USERS: DovecotUser[] = [
  { user: 'alice', pass: 'alice-pass' },
  { user: 'bob', pass: 'bob-pass' },
];

function accountIds(): { user: string; uid: number; gid: number; login: string; internal: string } {
  const me = os.userInfo();
  if (me.uid !== 0) return { user: me.username, uid: me.uid, gid: me.gid, login: me.username, internal: me.username };
  // As root Dovecot drops privileges to its packaged users (created by dovecot-core).
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const row = passwd.split('\n').find((l) => l.startsWith('dovecot:'));
  if (!row) throw new Error('user "dovecot" missing: run npm run setup:test');
  const [, , uid, gid] = row.split(':');
  return { user: 'dovecot', uid: Number(uid), gid: Number(gid), login: 'dovenull', internal: 'dovecot' };
}

/** The oauth2 passdb (Dovecot 2.3 wiki PasswordDatabase/oauth2) ahead of the passwd-file one,
 *  which is then limited to passwords so a password never passes as a token. */
function oauth2Conf(dir: string, introspectionUrl: string): { mechanisms: string; passdb: string } {
  const ext = join(dir, 'dovecot-oauth2.conf.ext');
  writeFileSync(
    ext,
    [`introspection_mode = post`, `introspection_url = ${introspectionUrl}`, 'force_introspection = yes', 'username_attribute = username',
      'active_attribute = active', 'active_value = true', 'username_format = %Lu', ''].join('\n'),
  );
  return {
    mechanisms: ' oauthbearer xoauth2',
    passdb: `passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = ${ext}\n}\n`,
  };
}

/** Dovecot's own auth penalty (anvil, 2 s doubling per failure per IP) would slow every
 *  failure test: mailgate is the one under test, so it is off unless a test asks for it. */
const NO_PENALTY = `service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;

/** The fixed nonce Dovecot salts pwhash with (auth_policy_hash_nonce): the same password gives
 *  the same hash across tests. Not a secret in a test. */
export const POLICY_HASH_NONCE = 'mailgate-test-policy-nonce';

/** auth_policy_* lines. An api header without a colon is sent as X-API-Key: <value>
 *  (Dovecot 2.3 auth-policy.c). */
function policyConf(policy: NonNullable<DovecotOptions['policy']>): string {
  return [
    `auth_policy_server_url = ${policy.url}`,
    `auth_policy_hash_nonce = ${POLICY_HASH_NONCE}`,
    ...(policy.apiKey ? [`auth_policy_server_api_header = ${policy.apiKey}`] : []),
    ...(policy.extra ? [policy.extra] : []),
    '',
  ].join('\n');
}

/** A login service with a plaintext/STARTTLS listener and an implicit-TLS one. */
function loginService(name: string, plain: number, tls: number): string {
  return [
    `service ${name}-login {`,
    `  inet_listener ${name} {`,
    `    port = ${plain}`,
    '  }',
    `  inet_listener ${name}s {`,
    `    port = ${tls}`,
    '    ssl = yes',
    '  }',
    '}',
  ].join('\n');
}

/** Starts Dovecot; a start that fails because one of its six free ports was taken meanwhile (by
 *  another test file's server: the ports are free when asked for, not reserved) is tried again
 *  on new ports, at most twice. */
export function startDovecot(opts: DovecotOptions = {}): Promise<DovecotInstance> {
  return retryOnPortClash(() => startDovecotOnce(opts));
}

/** Runs start() again (at most twice) when it failed because a free port it was given was
 *  taken meanwhile (by another test file's server: free when asked for, not reserved). */
export async function retryOnPortClash<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= 3 || !/Address already in use/i.test((err as Error).message)) throw err;
    }
  }
}

export interface Daemon {
  readLog(): string;
  /** SIGTERM (SIGKILL after 5 s), then the temp dir is removed. */
  stop(): Promise<void>;
}

/** Spawns a server that stays in the foreground and resolves once it accepts on every port;
 *  a server that exits first, or never listens, is killed, its temp dir removed, and the
 *  error carries its stderr and log. */
export async function spawnDaemon(what: string, argv: string[], dir: string, logPath: string, ports: number[]): Promise<Daemon> {
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const readLog = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  try {
    await Promise.race([
      Promise.all(ports.map((p) => waitForPort(p))),
      exited.then(() => {
        throw new Error(`${what} exited at start: ${stderr}${readLog()}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    readLog,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startDovecotOnce(opts: DovecotOptions): Promise<DovecotInstance> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-dovecot-'));
  chmodSync(dir, 0o755); // login processes run unprivileged and must reach base_dir
  const users = opts.users ?? DEFAULT_USERS;
  const ids = accountIds();
  const cert = await devCert(dir);
  chmodSync(cert.keyPath, 0o600);
  const home = join(dir, 'home');
  mkdirSync(home);
  if (os.userInfo().uid === 0) chownSync(home, ids.uid, ids.gid);
  writeFileSync(join(dir, 'passwd'), users.map((u) => `${u.user}:{PLAIN}${u.pass}::::::${u.extra ?? ''}`).join('\n') + '\n');

  const [imap, imaps, pop3, pop3s, submission, submissions] = await freePorts(6);
  const ports = { imap: imap!, imaps: imaps!, pop3: pop3!, pop3s: pop3s!, submission: submission!, submissions: submissions! };
  const relay = opts.relay ?? { host: '127.0.0.1', port: 9 };
  const oauth2 = opts.oauth2 ? oauth2Conf(dir, opts.oauth2.introspectionUrl) : { mechanisms: '', passdb: '' };
  const conf = `
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
instance_name = mailgate-test-${ports.imap}
protocols = imap pop3 submission
listen = 127.0.0.1
hostname = localhost
default_internal_user = ${ids.internal}
default_login_user = ${ids.login}
first_valid_uid = ${ids.uid}
last_valid_uid = 0
ssl = yes
ssl_cert = <${cert.certPath}
ssl_key = <${cert.keyPath}
disable_plaintext_auth = no
auth_mechanisms = plain login${oauth2.mechanisms}
${opts.penalty ? '' : 'auth_failure_delay = 0\n'}auth_verbose = yes
auth_username_format = %Lu
login_trusted_networks = ${(opts.trustedNetworks ?? ['127.0.0.0/8']).join(' ')}
mail_location = maildir:~/Maildir
${oauth2.passdb}passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd${opts.oauth2 ? '\n  mechanisms = plain login' : ''}
}
userdb {
  driver = static
  args = uid=${ids.uid} gid=${ids.gid} home=${home}/%u
}
${loginService('imap', ports.imap, ports.imaps)}
${loginService('pop3', ports.pop3, ports.pop3s)}
${loginService('submission', ports.submission, ports.submissions)}
${opts.penalty ? '' : NO_PENALTY}submission_relay_host = ${relay.host}
submission_relay_port = ${relay.port}
submission_relay_trusted = yes
submission_relay_ssl = no
${opts.policy ? policyConf(opts.policy) : ''}${opts.extraConf ?? ''}
`;
  const confPath = join(dir, 'dovecot.conf');
  writeFileSync(confPath, conf);

  const { readLog, stop } = await spawnDaemon('dovecot', ['/usr/sbin/dovecot', '-F', '-c', confPath], dir, join(dir, 'dovecot.log'), Object.values(ports));

  const settledLog = async (from = 0): Promise<string> => {
    const ip = `127.0.59.${(barriers++ % 250) + 1}`;
    const seen = () => readLog().split(`rip=${ip},`).length;
    const before = seen();
    const c = await RawClient.connect(ports.imap, { localAddress: ip });
    await c.waitFor(/\r\n/);
    c.write('b LOGOUT\r\n');
    await c.waitClosed();
    await until(() => seen() > before, 'Dovecot to log the barrier connection');
    return readLog().slice(from).split('\n').filter((l) => !l.includes('rip=127.0.59.')).join('\n');
  };

  return {
    dir,
    host: '127.0.0.1',
    ports,
    users,
    cert,
    readLog,
    settledLog,
    async logMark() {
      await settledLog();
      return readLog().length;
    },
    async penalties() {
      // "IP penalty last_penalty last_update", a header line, then one row per address.
      const { stdout } = await promisify(execFile)('/usr/bin/doveadm', ['-c', confPath, 'penalty']);
      const rows = stdout.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((r) => r.length >= 2);
      return new Map(rows.map(([ip, count]) => [ip!, Number(count)]));
    },
    stop,
  };
}
