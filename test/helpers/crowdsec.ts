// A real CrowdSec Local API for tests: Debian's crowdsec 1.4.6 run as `crowdsec -no-cs
// -no-capi` (the LAPI alone, no agent, no Central API) with a config, sqlite database and free
// loopback port in a temp dir, never the packaged service or /var/lib/crowdsec. cscli, run with
// the same config, adds the bouncer key and machines and the decisions tests need.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitForPort } from './ports.js';

const run = promisify(execFile);
const CROWDSEC = '/usr/bin/crowdsec';
const CSCLI = '/usr/bin/cscli';

export interface CrowdsecLapi {
  url: string;
  port: number;
  /** A bouncer key registered at start. */
  bouncerKey: string;
  /** Registers another bouncer, returns its key. The LAPI keeps one stream position per key:
   *  two pullers sharing one each miss the deltas the other took, so each proxy its own. */
  newBouncer(): Promise<string>;
  /** A machine registered at start, for mailgate's crowdsec.machine. */
  machine: { login: string; password: string };
  /** cscli with this LAPI's config; resolves to stdout. */
  cscli(...args: string[]): Promise<string>;
  /** The active decisions of all origins (cscli decisions list -a: without -a cscli shows only
   *  crowdsec's and cscli's own), one per type, scope and value (cscli hides the others). */
  decisions(): Promise<{ origin: string; scope: string; value: string; scenario: string; duration: string }[]>;
  /** Stop the LAPI (SIGTERM, waited for); start() brings it back on the same port and data. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function config(dir: string, port: number): string {
  return `common:
  daemonize: false
  log_media: file
  log_dir: ${dir}/log/
  log_level: info
  working_dir: ${dir}
config_paths:
  config_dir: ${dir}/
  data_dir: ${dir}/data/
  simulation_path: /etc/crowdsec/simulation.yaml
  hub_dir: ${dir}/hub/
  index_path: ${dir}/hub/.index.json
  notification_dir: ${dir}/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: ${dir}/acquis.yaml
cscli:
  output: human
db_config:
  log_level: info
  type: sqlite
  db_path: ${dir}/data/crowdsec.db
  use_wal: true
api:
  client:
    insecure_skip_verify: false
    credentials_path: ${dir}/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:${port}
    profiles_path: /etc/crowdsec/profiles.yaml
    trusted_ips:
      - 127.0.0.1
prometheus:
  enabled: false
`;
}

export async function startCrowdsec(): Promise<CrowdsecLapi> {
  const dir = mkdtempSync(join(tmpdir(), 'mg-crowdsec-'));
  for (const d of ['data', 'hub', 'notifications', 'log']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'hub', '.index.json'), '{}');
  const port = await freePort();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, config(dir, port));
  // Some cscli commands (import, machines, bouncers) write the sqlite database themselves,
  // beside a LAPI that writes each bouncer's last pull: under load sqlite may answer "database
  // is locked" for a moment. Retried a few times; any other failure is the test's.
  const cscli = async (...args: string[]): Promise<string> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await run(CSCLI, ['-c', file, ...args], { timeout: 30_000 })).stdout;
      } catch (err) {
        if (attempt >= 5 || !/database is locked|SQLITE_BUSY/i.test(String((err as { stderr?: string }).stderr))) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  };
  let child: ChildProcess | null = null;
  let stderr = '';

  async function start(): Promise<void> {
    stderr = '';
    child = spawn(CROWDSEC, ['-c', file, '-no-cs', '-no-capi'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<never>((_, reject) => child!.once('exit', (code) => reject(new Error(`crowdsec exited ${code}: ${stderr.trim()}`))));
    await Promise.race([waitForPort(port, 30_000), exited]);
  }

  async function kill(): Promise<void> {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    await gone;
  }

  const bouncerKey = randomBytes(16).toString('hex');
  const machine = { login: 'mailgate', password: randomBytes(16).toString('hex') };
  // The machines and the bouncer go straight into the database: no LAPI needed yet.
  await cscli('machines', 'add', 'cscli', '--auto', '-f', join(dir, 'local_api_credentials.yaml'));
  await cscli('machines', 'add', machine.login, '--password', machine.password, '-f', join(dir, 'mailgate-credentials.yaml'));
  await cscli('bouncers', 'add', 'mailgate', '-k', bouncerKey);
  await start();

  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    bouncerKey,
    machine,
    cscli,
    async newBouncer() {
      const key = randomBytes(16).toString('hex');
      await cscli('bouncers', 'add', `mailgate-${key.slice(0, 8)}`, '-k', key);
      return key;
    },
    async decisions() {
      const out = await cscli('decisions', 'list', '-a', '-o', 'json');
      const alerts = (JSON.parse(out) ?? []) as { decisions?: { origin: string; scope: string; value: string; scenario: string; duration: string }[] }[];
      return alerts.flatMap((a) => a.decisions ?? []).filter((d) => !d.duration.startsWith('-'));
    },
    kill,
    start,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
