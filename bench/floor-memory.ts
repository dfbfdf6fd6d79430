// Memory per idle connection of the bare Node relay (bench/floor-proxy.mjs) run by other Node
// builds and TLS settings, beside nginx and mailgate, measured as the bench's memory phase
// measures (phase-memory.ts): how much of an idle connection is Node's and OpenSSL's own.
// Usage: npm run build && npx vite-node bench/floor-memory.ts [--counts=1000,10000]
//   [--node=/usr/bin/node] (another Node binary for the floor, e.g. Debian's)
//   [--groups=X25519] (a floor that offers only these key exchange groups)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fdLimit } from './lib.js';
import { memoryPhase } from './phase-memory.js';
import { benchUsers, startFloor, startMailgate, startNginx, startTunedDovecot, type Proc } from './services.js';
import { freePorts } from '../test/helpers/ports.js';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const counts = (args.counts ?? '1000,10000').split(',').map(Number);
const dir = mkdtempSync(join(os.tmpdir(), 'floor-memory-'));
const users = benchUsers(200);
const dovecot = await startTunedDovecot(users);

/** The floor relay on `node` with `env`, named `name`. */
async function floor(name: string, node: string, env: Record<string, string>): Promise<Proc> {
  if (node === process.execPath && Object.keys(env).length === 0) return { ...(await startFloor(dovecot)), name };
  const [port] = (await freePorts(1)) as [number];
  const script = new URL('./floor-proxy.mjs', import.meta.url).pathname;
  const child = spawn(node, [script, String(port), String(dovecot.ports.imap), dovecot.cert.certPath, dovecot.cert.keyPath], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  const pid = child.pid!;
  return { name, pid, pids: () => [pid], ports: { imap: port, pop3: 0 }, stop: async () => void (child.kill(), await new Promise((r) => child.once('exit', r))) } as Proc;
}

/** "v24.22.3, OpenSSL 3.5.9": which Node and OpenSSL a binary is. */
const version = (node: string) => execFileSync(node, ['-p', 'process.version + ", OpenSSL " + process.versions.openssl'], { encoding: 'utf8' }).trim();
try {
  const floors = [{ name: `node-floor (${version(process.execPath)})`, node: process.execPath, env: {} }];
  if (args.node) floors.push({ name: `node-floor (${version(args.node)})`, node: args.node, env: {} });
  if (args.groups) floors.push({ name: `node-floor (groups ${args.groups})`, node: process.execPath, env: { FLOOR_GROUPS: args.groups } });
  const rows = await memoryPhase(
    [
      { name: 'nginx', singleProcess: false, start: () => startNginx(join(dir, `nginx-${Date.now()}`), dovecot) },
      ...floors.map((f) => ({ name: f.name, singleProcess: true, start: () => floor(f.name, f.node, f.env) })),
      { name: 'mailgate', singleProcess: true, start: () => startMailgate({ name: 'mailgate', dir: join(dir, `mailgate-${Date.now()}`), dovecot }) },
    ],
    { counts, users, fdLimit: await fdLimit(), log: (s) => console.log(s) },
  );
  console.log(JSON.stringify(rows));
} finally {
  await dovecot.stop();
  rmSync(dir, { recursive: true, force: true });
}
