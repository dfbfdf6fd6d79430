// Account tests (login history, retired passwords): a user's password changed in a test
// Dovecot's passwd file, one IMAP LOGIN with everything the client read up to its answer, and a
// local HTTP receiver for the alert webhooks.
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { DovecotInstance } from './dovecot.js';
import { RawClient } from './raw-client.js';
import { until } from './until.js';

let changes = 0;

/** One IMAP LOGIN on `port` from `ip`: everything the client read up to the tagged answer. */
export async function imapLoginReply(port: number, ip: string | undefined, user: string, pass: string, tag = 'a'): Promise<string> {
  const c = await RawClient.connect(port, { localAddress: ip });
  try {
    await c.waitFor(/\r\n/);
    c.clear();
    c.write(`${tag} LOGIN ${user} ${pass}\r\n`);
    return await c.waitFor(new RegExp(`^${tag} (OK|NO|BAD) [^\\r]*\\r\\n`, 'm'));
  } finally {
    c.close();
  }
}

/** A user's password in the test Dovecot's passwd file (no auth cache), once Dovecot itself
 *  (asked directly, not through mailgate) takes it: it looks at the file at most once a second,
 *  and again only when its mtime (whole seconds) or size changed, so the mtime is moved on. */
export async function setPassword(dovecot: DovecotInstance, user: string, pass: string): Promise<void> {
  const file = join(dovecot.dir, 'passwd');
  const lines = readFileSync(file, 'utf8').split('\n').map((l) => (l.startsWith(`${user}:`) ? l.replace(/^([^:]+):\{PLAIN\}[^:]*:/, `$1:{PLAIN}${pass}:`) : l));
  writeFileSync(file, lines.join('\n'));
  const t = Date.now() / 1000 + ++changes;
  utimesSync(file, t, t);
  await until(async () => /^d OK/m.test(await imapLoginReply(dovecot.ports.imap, undefined, user, pass, 'd')), `Dovecot to take ${user}'s new password`, 10_000);
}

/** An alert webhook body as alerts.ts posts it. */
export interface HookPost {
  kind: string;
  events: { kind: string; subject?: string; network?: string; protocol?: string }[];
}

/** For a test file: a local HTTP receiver of webhook posts (`url` and `posts` set once started). */
export function hookReceiverForFile(): { url: string; posts: HookPost[] } {
  const hook = { url: '', posts: [] as HookPost[] };
  let server: http.Server;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString()));
      req.on('end', () => {
        hook.posts.push(JSON.parse(data) as HookPost);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  return hook;
}
