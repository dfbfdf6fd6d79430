// The mailgate command as operators run it, for end-to-end tests: compiled once per test file
// (inside the project, so it resolves node_modules), spawned with a config file, its JSON log
// lines collected, its listener ports read from them.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface BuiltCli {
  dir: string;
  cli: string;
  writeConfig(name: string, text: string): string;
  run(args: string[], env?: NodeJS.ProcessEnv): { code: number; stdout: string; stderr: string };
  remove(): void;
}

export function buildCli(): BuiltCli {
  mkdirSync('node_modules/.cache', { recursive: true });
  const dir = mkdtempSync(resolve('node_modules/.cache/mailgate-cli-'));
  const dist = join(dir, 'dist');
  execFileSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--outDir', dist]);
  execFileSync(process.execPath, [resolve('scripts/copy-assets.mjs'), dist]);
  const cli = join(dist, 'cli.js');
  return {
    dir,
    cli,
    writeConfig(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    run(args, env) {
      try {
        const stdout = execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
        return { code: 0, stdout, stderr: '' };
      } catch (err) {
        const e = err as { status: number; stdout: string; stderr: string };
        return { code: e.status, stdout: e.stdout, stderr: e.stderr };
      }
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A config for worker mode in front of one IMAP backend: `workers: 2`, a plaintext IMAP
 *  listener on a free port, an admin endpoint (its token from the environment), a 1 s drain;
 *  `extra`'s top-level keys (limits, crowdsec, firewall…) added or replacing. */
export function workersConfig(imapPort: number, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    workers: 2,
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: imapPort } },
    admin: { listen: '127.0.0.1:0' },
    timeouts: { shutdown: '1s' },
    ...extra,
  };
}

export interface RunningProxy {
  child: ChildProcess;
  ports: Record<string, number>;
  admin: number | null;
  /** Log lines so far (parsed JSON). */
  lines(): Record<string, unknown>[];
  /** stdout lines that were not JSON (lines of two processes mixed: none expected). */
  badLines(): string[];
  /** Resolves once a log line matches. */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a signal and resolves with the exit code. */
  signal(sig: NodeJS.Signals): Promise<number | null>;
}

export async function spawnProxy(cli: string, configPath: string, env: NodeJS.ProcessEnv = {}): Promise<RunningProxy> {
  const child = spawn(process.execPath, [cli, '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const parsed: Record<string, unknown>[] = [];
  const bad: string[] = [];
  let partial = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const rows = partial.split('\n');
    partial = rows.pop()!;
    for (const r of rows) {
      if (!r) continue;
      try {
        parsed.push(JSON.parse(r) as Record<string, unknown>);
      } catch {
        bad.push(r);
      }
    }
    waiters.forEach((w) => w());
  });
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitForLog: RunningProxy['waitForLog'] = (pred, timeoutMs = 15_000) =>
    new Promise((resolveLine, reject) => {
      const check = () => {
        const hit = parsed.find(pred);
        if (!hit) return;
        waiters.delete(check);
        clearTimeout(t);
        resolveLine(hit);
      };
      const t = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log line; stderr: ${stderr}`));
      }, timeoutMs);
      waiters.add(check);
      void exit.then(() => {
        if (waiters.has(check)) {
          waiters.delete(check);
          clearTimeout(t);
          reject(new Error(`mailgate exited: ${stderr}`));
        }
      });
      check();
    });
  await waitForLog((l) => l.event === 'proxy.start');
  const ports: Record<string, number> = {};
  for (const l of parsed) if (l.event === 'listener.start') ports[l.listener as string] = l.port as number;
  const admin = (parsed.find((l) => l.event === 'admin.start')?.port as number | undefined) ?? null;
  return {
    child,
    ports,
    admin,
    lines: () => parsed,
    badLines: () => bad,
    waitForLog,
    async signal(sig) {
      if (child.exitCode === null) child.kill(sig);
      return exit;
    },
  };
}
