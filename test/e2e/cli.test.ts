// The mailgate command as operators run it: compiled once into a temp dir, then spawned.
// --check exit codes, config errors naming the key, the development certificate on first
// start, and a clean stop on SIGTERM.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, spawnProxy, type BuiltCli } from '../helpers/cli.js';
import { startDovecot } from '../helpers/dovecot.js';
import { RawClient } from '../helpers/raw-client.js';

let built: BuiltCli;
let out: string;
let cli: string;

beforeAll(() => {
  built = buildCli();
  out = built.dir;
  cli = built.cli;
}, 120_000);
afterAll(() => built?.remove());

const run = (args: string[]) => built.run(args);
const writeConfig = (name: string, text: string) => built.writeConfig(name, text);

describe('mailgate --check', () => {
  it('accepts the shipped default config', () => {
    const r = run(['--check', '--config', 'config/mailgate.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ok');
  });

  it('exits 2 naming the key path and what was expected', () => {
    const p = writeConfig('bad.yaml', [
      'listeners:',
      '  - {name: imap, protocol: imap, listen: "127.0.0.1:1143", tls: none, backend: imap}',
      'backends: {imap: {host: 127.0.0.1, port: 143, connectTimeout: soon}}',
      'limits:',
      '  rules:',
      '    - {name: r, key: ip, count: attempts, limit: 3, window: 1h, colour: red}',
    ].join('\n'));
    const r = run(['--check', '--config', p]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/backends\.imap\.connectTimeout: expected a duration/);
    expect(r.stderr).toMatch(/limits\.rules\.0\.colour: unknown key/);
  });

  it('exits 2 on YAML that does not parse, and on a missing file', () => {
    expect(run(['--check', '--config', writeConfig('broken.yaml', 'listeners: [\n')]).code).toBe(2);
    expect(run(['--check', '--config', join(out, 'nope.yaml')]).code).toBe(2);
  });

  it('exits 2 on unknown options', () => {
    expect(run(['--frobnicate']).code).toBe(2);
  });

  it('--version prints the package version and exits 0', () => {
    const r = run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`mailgate ${(JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version} (node ${process.version})\n`);
  });
});

describe('mailgate --config', () => {
  it('generates and warns about a development certificate, listens, and stops on SIGTERM', async () => {
    const tlsDir = join(out, 'tls');
    const p = writeConfig('run.yaml', [
      'listeners:',
      '  - {name: imaps, protocol: imap, listen: "127.0.0.1:0", tls: implicit, backend: imap}',
      `tls: {cert: ${tlsDir}/cert.pem, key: ${tlsDir}/key.pem, devCertificate: true}`,
      'backends: {imap: {host: 127.0.0.1, port: 143}}',
    ].join('\n'));
    const child = spawn(process.execPath, [cli, '--config', p], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await new Promise<void>((resolveStarted, reject) => {
      child.stdout.on('data', () => stdout.includes('"proxy.start"') && resolveStarted());
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stdout}`)));
    });
    expect(existsSync(join(tlsDir, 'cert.pem'))).toBe(true);
    expect(stdout).toMatch(/"event":"tls\.dev-certificate"/);
    const code = await new Promise<number | null>((r) => {
      child.once('exit', r);
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
    expect(stdout).toMatch(/"event":"proxy\.stop"/);
  });

  it('a real client through it: STARTTLS and implicit TLS logins, APPEND and FETCH byte for byte, an ip limit of 3', async () => {
    const dovecot = await startDovecot();
    const p = writeConfig('walk.yaml', [
      'listeners:',
      '  - {name: imap, protocol: imap, listen: "127.0.0.1:0", tls: starttls, backend: imap}',
      '  - {name: imaps, protocol: imap, listen: "127.0.0.1:0", tls: implicit, backend: imap}',
      `tls: {cert: ${dovecot.cert.certPath}, key: ${dovecot.cert.keyPath}}`,
      `backends: {imap: {host: 127.0.0.1, port: ${dovecot.ports.imap}}}`,
      'limits:',
      '  rules:',
      '    - {name: ip-logins, key: ip, count: attempts, limit: 3, window: 1h}',
    ].join('\n'));
    const proxy = await spawnProxy(cli, p);
    const ports = proxy.ports;
    try {
      const message = Buffer.from('Subject: walk\r\n\r\nbody \u00e9\r\n' + 'y'.repeat(10_000) + '\r\n', 'utf8');
      // imapflow cannot pick a source address: its logins come from 127.0.0.1.
      const client = (port: number, secure: boolean) =>
        new ImapFlow({ host: '127.0.0.1', port, secure, doSTARTTLS: !secure || undefined, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'alice-pass' }, logger: false } as ConstructorParameters<typeof ImapFlow>[0]);
      const a = client(ports.imap!, false);
      await a.connect();
      const { uid } = (await a.append('INBOX', message)) as { uid: number };
      await a.logout();
      const b = client(ports.imaps!, true);
      await b.connect();
      await b.mailboxOpen('INBOX');
      const got = (await b.fetchOne(String(uid), { source: true }, { uid: true })) as { source: Buffer };
      expect(got.source.equals(message)).toBe(true);
      await b.logout();
      const third = client(ports.imaps!, true);
      await third.connect();
      await third.logout();
      const raw = await RawClient.connect(ports.imaps!, { tls: true });
      await raw.waitFor(/\r\n/);
      raw.write('x LOGIN alice alice-pass\r\n');
      expect(await raw.waitClosed()).toMatch(/x NO \[UNAVAILABLE\] Too many login attempts; try again in \d+ seconds\./);
      const other = await RawClient.connect(ports.imaps!, { tls: true, localAddress: '127.0.7.2' });
      await other.waitFor(/\r\n/);
      other.write('y LOGIN alice alice-pass\r\n');
      await other.waitFor(/y OK \[CAPABILITY/);
      other.close();
    } finally {
      await proxy.signal('SIGTERM');
      await dovecot.stop();
    }
  });

  it('refuses to start on an invalid file, before listening', () => {
    const p = writeConfig('bad-run.yaml', 'listeners: []\nbackends: {}\n');
    const r = run(['--config', p]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/listeners/);
  });
});
