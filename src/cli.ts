#!/usr/bin/env node
// Command line: `mailgate --config FILE` runs the proxy, `--check` validates and exits.
// Exit codes: 0 ok, 1 runtime failure, 2 invalid config or usage.
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { MailgateError } from './errors.js';
import { startProxy } from './main.js';

const USAGE = 'usage: mailgate --config FILE [--check]';

function fail(message: string, code: number): never {
  process.stderr.write(`mailgate: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: { config: { type: 'string', short: 'c' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }).values;
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!args.config) fail(`--config is required\n${USAGE}`, 2);
  let cfg: Config;
  try {
    cfg = loadConfig(args.config);
  } catch (err) {
    if (err instanceof MailgateError) fail(`invalid config ${args.config}:\n${err.message}`, 2);
    throw err;
  }
  if (args.check) {
    process.stdout.write(`${args.config}: ok\n`);
    return;
  }
  const proxy = await startProxy(cfg).catch((err: Error) => {
    const code = err instanceof MailgateError && err.code === 'MG_TLS_MATERIAL' ? 2 : 1;
    fail(err.message, code);
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void proxy.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
