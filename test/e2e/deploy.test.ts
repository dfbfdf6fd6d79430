// Deployment files: compose.yaml validates with Debian's docker-compose, and the mailgate
// config it mounts passes --check with its secrets from the environment (and names them
// when they are missing).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, type BuiltCli } from '../helpers/cli.js';

let built: BuiltCli;
beforeAll(() => {
  built = buildCli();
}, 120_000);
afterAll(() => built?.remove());

describe('deployment files', () => {
  it('docker-compose config -q accepts compose.yaml', () => {
    const run = () => execFileSync('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MAILGATE_KEY_SECRET: 'k'.repeat(20), MAILGATE_ADMIN_TOKEN: 't'.repeat(20) } });
    expect(run).not.toThrow();
    const services = execFileSync('docker-compose', ['-f', 'compose.yaml', 'config', '--services'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(services.split('\n').filter(Boolean).sort()).toEqual(['dovecot', 'mailgate', 'redis']);
  });

  it('the compose mailgate config passes --check with its secrets, and names them without', () => {
    const ok = built.run(['--check', '--config', 'deploy/compose/mailgate.yaml'], { MAILGATE_KEY_SECRET: 'k'.repeat(20), MAILGATE_ADMIN_TOKEN: 't'.repeat(20) });
    expect(ok.code).toBe(0);
    const missing = built.run(['--check', '--config', 'deploy/compose/mailgate.yaml'], { MAILGATE_KEY_SECRET: '', MAILGATE_ADMIN_TOKEN: '' });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/limits\.keySecret: required with store\.type redis/);
    expect(missing.stderr).toMatch(/admin\.token: required when admin\.listen is not a loopback address/);
  });

  it('the image and the systemd unit run Node 24: the pinned binary exists after npm install', () => {
    const froms = [...readFileSync('Dockerfile', 'utf8').matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
    const unit = readFileSync('deploy/systemd/mailgate.service', 'utf8');
    const execs = [...unit.matchAll(/^ExecStart(?:Pre)?=(\S+)/gm)].map((m) => m[1]);
    expect(execs).toEqual(['/opt/mailgate/node_modules/.bin/node', '/opt/mailgate/node_modules/.bin/node']);
    // Here: the same relative path, installed by npm from the optional dependency.
    const local = 'node_modules/.bin/node';
    expect(existsSync(local)).toBe(true);
    expect(execFileSync(local, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim()).toMatch(/^24\./);
  });
});
