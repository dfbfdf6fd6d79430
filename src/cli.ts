#!/usr/bin/env node
// Command line: `mailgate --config FILE` runs the proxy (SIGHUP reloads, SIGTERM stops
// gracefully): one process with `workers: 1`, else a primary and its workers (cluster/), which
// run this file too and take their orders from the primary. `--check` validates, `mailgate
// admin …` talks to the admin endpoint. Exit codes: 0 ok, 1 runtime failure, 2 invalid config
// or usage.
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { adminMain } from './admin/client.js';
import { loadConfig } from './config/load.js';
import { lockoutRisks } from './config/lockout.js';
import type { Config } from './config/schema.js';
import { runPrimary, workerCount } from './cluster/primary.js';
import { runWorker } from './cluster/worker.js';
import { exitCodeOf, MailgateError } from './errors.js';
import { createLogger } from './logging/logger.js';
import { startProxy } from './main.js';

const USAGE = 'usage: mailgate --config FILE [--check]\n       mailgate --version\n       mailgate admin COMMAND … (mailgate admin --help)';

/** The package version the build wrote next to this file (scripts/copy-assets.mjs). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('./version.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function fail(message: string, code: number): never {
  process.stderr.write(`mailgate: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  // A worker of ours (another cluster, a process manager's, runs mailgate as one process).
  if (cluster.isWorker && process.env.MAILGATE_WORKER) return runWorker();
  if (process.argv[2] === 'admin') {
    process.exitCode = await adminMain(process.argv.slice(3), (s) => process.stdout.write(s));
    return;
  }
  let args;
  try {
    args = parseArgs({
      options: { config: { type: 'string', short: 'c' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' } },
      strict: true,
    }).values;
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.version) {
    process.stdout.write(`mailgate ${version()} (node ${process.version})\n`);
    return;
  }
  const file = args.config;
  if (!file) fail(`--config is required\n${USAGE}`, 2);
  let cfg: Config;
  try {
    cfg = loadConfig(file);
  } catch (err) {
    if (err instanceof MailgateError) fail(`invalid config ${file}:\n${err.message}`, 2);
    throw err;
  }
  const risks = lockoutRisks(cfg.limits);
  if (args.check) {
    for (const r of risks) process.stdout.write(`${file}: warning: ${r.rule} ${r.why}\n`);
    process.stdout.write(`${file}: ok\n`);
    return;
  }
  const workers = cluster.isPrimary ? workerCount(cfg) : 1;
  // Worker mode: every line says which process wrote it (0: the primary).
  const log = createLogger(cfg.log.level, undefined, workers > 1 ? 0 : undefined);
  for (const r of risks) log.warn({ event: 'config.warning', rule: r.rule }, r.why);
  if (workers > 1) {
    await runPrimary(file, cfg, log, workers).catch((err: Error & { exitCode?: 1 | 2 }) => fail(err.message, err.exitCode ?? exitCodeOf(err)));
    return;
  }
  const proxy = await startProxy(cfg, { log }).catch((err: Error) => fail(err.message, exitCodeOf(err)));
  process.on('SIGHUP', () => {
    // An invalid file keeps the running configuration.
    let next: Config;
    try {
      next = loadConfig(file);
    } catch (err) {
      proxy.metrics.reloads.inc({ result: 'invalid' });
      log.error({ event: 'config.reload', error: (err as Error).message }, 'reload refused: invalid config, keeping the running one');
      return;
    }
    proxy.reload(next).then(
      () => proxy.metrics.reloads.inc({ result: 'ok' }),
      (err: Error) => {
        proxy.metrics.reloads.inc({ result: 'invalid' });
        log.error({ event: 'config.reload', error: err.message }, 'reload failed, keeping the running configuration');
      },
    );
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void proxy.shutdown().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
