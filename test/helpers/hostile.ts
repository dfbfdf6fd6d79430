// Shared rig for the hostile-input and fault suites (test/hostile/): a proxy config with one
// listener per protocol and TLS mode in front of a real Dovecot, protocol-aware greeting and
// login helpers over raw sockets, and process resource probes (open fds, heap after GC).
import { readdirSync, readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { b64 } from './codec.js';
import type { DovecotInstance } from './dovecot.js';
import { RawClient } from './raw-client.js';

export type Proto = 'imap' | 'pop3' | 'smtp';
export const PROTOS: Proto[] = ['imap', 'pop3', 'smtp'];

/** Listeners `<proto>-plain` (tls none, login allowed in the clear), `<proto>-starttls` and
 *  `<proto>-tls` (implicit), all to the matching Dovecot service. */
export function proxyConfig(dovecot: DovecotInstance, extra: { limits?: Record<string, unknown>; timeouts?: Record<string, unknown>; backends?: Record<string, unknown> } = {}) {
  const listeners: { name: string; protocol: Proto; listen: string; tls: string; backend: string; hostname: string }[] = PROTOS.flatMap((p) => [
    { name: `${p}-plain`, protocol: p, listen: '127.0.0.1:0', tls: 'none', backend: p, hostname: 'mx.test' },
    { name: `${p}-starttls`, protocol: p, listen: '127.0.0.1:0', tls: 'starttls', backend: p, hostname: 'mx.test' },
    { name: `${p}-tls`, protocol: p, listen: '127.0.0.1:0', tls: 'implicit', backend: p, hostname: 'mx.test' },
  ]);
  return {
    listeners,
    tls: { cert: dovecot.cert.certPath, key: dovecot.cert.keyPath },
    backends: {
      imap: { host: '127.0.0.1', port: dovecot.ports.imap },
      pop3: { host: '127.0.0.1', port: dovecot.ports.pop3 },
      smtp: { host: '127.0.0.1', port: dovecot.ports.submission },
      ...extra.backends,
    },
    limits: { rules: [], ...extra.limits },
    timeouts: { ...extra.timeouts },
  };
}

/** The greeting each protocol sends first. */
export const GREETING: Record<Proto, RegExp> = { imap: /^\* OK .*\r\n/, pop3: /^\+OK .*\r\n/, smtp: /^220 .*\r\n/ };

export async function greeted(proto: Proto, port: number, opts: { localAddress?: string; tls?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(port, opts);
  await c.waitFor(GREETING[proto]);
  c.clear();
  return c;
}

/** One complete login as a well-behaved client would send it (SMTP: EHLO first). */
export function loginBytes(proto: Proto, user: string, pass: string, tag = 'a'): string {
  switch (proto) {
    case 'imap':
      return `${tag} LOGIN {${Buffer.byteLength(user, 'latin1')}+}\r\n${user} {${Buffer.byteLength(pass, 'latin1')}+}\r\n${pass}\r\n`;
    case 'pop3':
      return `USER ${user}\r\nPASS ${pass}\r\n`;
    case 'smtp':
      return `EHLO client.test\r\nAUTH PLAIN ${b64(`\0${user}\0${pass}`)}\r\n`;
  }
}

/** The reply that ends a login: success, and the temporary failure. */
export const LOGIN_OK: Record<Proto, RegExp> = { imap: /^a OK /m, pop3: /^\+OK Logged in/m, smtp: /^235 /m };
export const TEMP_FAIL: Record<Proto, RegExp> = { imap: /^a NO \[UNAVAILABLE\] /m, pop3: /^-ERR \[SYS\/TEMP\] /m, smtp: /^454 4\.7\.0 /m };
export const AUTH_FAIL: Record<Proto, RegExp> = { imap: /^a NO \[AUTHENTICATIONFAILED\] /m, pop3: /^-ERR \[AUTH\] /m, smtp: /^535 /m };
export const ANY_LOGIN_END: Record<Proto, RegExp> = {
  imap: /^a (?:OK|NO|BAD) /m,
  pop3: /^(?:\+OK Logged in|-ERR )[^\r]*\r\n/m,
  smtp: /^(?:235|4\d\d|5\d\d) /m,
};

/** Logs in over a fresh connection; returns what the client saw. */
export async function loginOnce(proto: Proto, port: number, user: string, pass: string, opts: { localAddress?: string; tls?: boolean } = {}): Promise<string> {
  const c = await greeted(proto, port, opts);
  c.write(loginBytes(proto, user, pass));
  try {
    return await c.waitFor(ANY_LOGIN_END[proto]);
  } finally {
    c.close();
  }
}

// --- Resources ----------------------------------------------------------------------------

/** Open file descriptors of this process (the proxy runs in it). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

v8.setFlagsFromString('--expose-gc');
const runGc = vm.runInNewContext('gc') as () => void;

/** Heap and buffer memory after a full collection. */
export function memoryAfterGc(): { heapUsed: number; arrayBuffers: number; rss: number } {
  runGc();
  runGc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

/** SIGKILLs the post-login processes (imap, pop3, submission) of one Dovecot instance started
 *  by test/helpers/dovecot.ts, as a crash would: the backend side of every spliced session
 *  dies at once. Returns how many were killed. */
export function killDovecotSessions(dovecot: DovecotInstance): number {
  const title = new RegExp(`^dovecot-mailgate-test-${dovecot.ports.imap}/(?:imap|pop3|submission)$`);
  let killed = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0+$/, '');
    } catch {
      continue; // gone meanwhile
    }
    if (!title.test(cmdline)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch {
      // exited meanwhile
    }
  }
  return killed;
}
