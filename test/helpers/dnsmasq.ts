// A real DNS server for blocklist tests: Debian's dnsmasq in the foreground on a free loopback
// port in a temp dir, serving test zones (listed names answer an address, the rest NXDOMAIN) and
// forwarding sub-zones to a scripted UDP responder: a named fault that answers late or never.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { until } from './until.js';

export interface DnsmasqOptions {
  /** Zones dnsmasq answers itself (--local): names not in `records` are NXDOMAIN. */
  zones: string[];
  /** Full name → the IPv4 address it answers. */
  records?: Record<string, string>;
  /** TTL of the answers from `records`, seconds (--local-ttl). */
  ttl?: number;
  /** Sub-zone → port of a server on 127.0.0.1 that dnsmasq forwards its queries to. */
  forward?: Record<string, number>;
}

export interface Dnsmasq {
  port: number;
  /** host:port, as limits.dnsbl.servers takes it. */
  server: string;
  /** A queries for `name` dnsmasq has received, from its query log, once the log is known to
   *  hold every query sent before this call (a canary query is logged after them). */
  queries(name: string): Promise<number>;
  stop(): Promise<void>;
}

const DNSMASQ = '/usr/sbin/dnsmasq';

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** Asks `server` for the A records of `name`; null when it has none or does not answer. */
async function ask(server: string, name: string): Promise<string[] | null> {
  const r = new Resolver({ timeout: 500, tries: 1 });
  r.setServers([server]);
  return r.resolve4(name).catch(() => null);
}

/** dnsmasq on `port`, answering `probe` with 127.0.0.1 once ready; null if it could not bind. */
async function spawnDnsmasq(port: number, dir: string, opts: DnsmasqOptions, probe: string): Promise<ChildProcess | null> {
  const records = { ...opts.records, [probe]: '127.0.0.1' };
  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    `--port=${port}`,
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
    `--user=${os.userInfo().username}`,
    '--log-queries',
    `--log-facility=${join(dir, 'dnsmasq.log')}`,
    // No cache: every forwarded query reaches the scripted responder.
    '--cache-size=0',
    `--local-ttl=${opts.ttl ?? 60}`,
    ...opts.zones.map((z) => `--local=/${z}/`),
    ...Object.entries(records).map(([name, addr]) => `--host-record=${name},${addr}`),
    ...Object.entries(opts.forward ?? {}).map(([zone, p]) => `--server=/${zone}/127.0.0.1#${p}`),
  ];
  const child = spawn(DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      if (/address (already )?in use/i.test(stderr)) return null;
      throw new Error(`dnsmasq exited ${child.exitCode}: ${stderr.trim()}`);
    }
    if ((await ask(`127.0.0.1:${port}`, probe))?.[0] === '127.0.0.1') return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`dnsmasq on port ${port} did not answer: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startDnsmasq(opts: DnsmasqOptions): Promise<Dnsmasq> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-dnsmasq-'));
  const probe = `probe-${randomBytes(6).toString('hex')}.${opts.zones[0]}`;
  let child: ChildProcess | null = null;
  let port = 0;
  for (let attempt = 1; !child; attempt++) {
    port = await freePort();
    child = await spawnDnsmasq(port, dir, opts, probe);
    if (!child && attempt >= 3) throw new Error('no free port for dnsmasq after 3 attempts');
  }
  const running = child;
  const server = `127.0.0.1:${port}`;
  const log = () => readFileSync(join(dir, 'dnsmasq.log'), 'utf8');
  let canaries = 0;
  return {
    port,
    server,
    async queries(name) {
      const canary = `canary-${++canaries}.${opts.zones[0]}`;
      await ask(server, canary);
      await until(() => log().includes(` query[A] ${canary} from `), `dnsmasq to log ${canary}`, 5_000);
      return log().split('\n').filter((l) => l.includes(` query[A] ${name} from `)).length;
    },
    async stop() {
      const done = exited(running);
      running.kill('SIGTERM');
      await done;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What the scripted responder does with a query: answer `answer` after `delayMs`, answer
 *  SERVFAIL, or never answer. */
export type Script = { answer: string; ttl: number; delayMs: number } | 'servfail' | 'silent';

export interface ScriptedDns {
  port: number;
  /** What it does with the next queries; change it at any time. */
  script: Script;
  /** Queries received and answers sent so far. */
  received: number;
  answered: number;
  stop(): Promise<void>;
}

/** A scripted fault, not a real server: a UDP responder on 127.0.0.1 that answers every A
 *  question with one address (late if told), SERVFAIL, or nothing: what dnsmasq will not do by
 *  itself. It answers one-question queries only (all dnsmasq forwards). */
export async function startScriptedDns(script: Script): Promise<ScriptedDns> {
  const sock = dgram.createSocket('udp4');
  const timers = new Set<NodeJS.Timeout>();
  const state: ScriptedDns = {
    port: 0,
    script,
    received: 0,
    answered: 0,
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      await new Promise<void>((r) => sock.close(() => r()));
    },
  };
  sock.on('message', (query, from) => {
    state.received++;
    const s = state.script;
    if (s === 'silent') return;
    const reply = s === 'servfail' ? answerFor(query, null, 0) : answerFor(query, s.answer, s.ttl);
    if (!reply) return;
    const t = setTimeout(
      () => {
        timers.delete(t);
        sock.send(reply, from.port, from.address, () => state.answered++);
      },
      s === 'servfail' ? 0 : s.delayMs,
    );
    timers.add(t);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  state.port = sock.address().port;
  return state;
}

/** The reply to a one-question query (RFC 1035 §4.1): its id and question, one A record for an
 *  A question, none (NODATA) for any other type; SERVFAIL when `address` is null. Null if the
 *  query is not one. */
function answerFor(query: Buffer, address: string | null, ttl: number): Buffer | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end]! + 1;
  end += 5; // the root label, QTYPE, QCLASS
  if (end > query.length) return null;
  const isA = address !== null && query.readUInt16BE(end - 4) === 1;
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  // QR, RA, RD as asked; RCODE 2 (SERVFAIL) or 0.
  header.writeUInt16BE(0x8180 | (query.readUInt16BE(2) & 0x0100) | (address === null ? 2 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(isA ? 1 : 0, 6);
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  rr.writeUInt16BE(1, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(ttl, 6);
  rr.writeUInt16BE(4, 10);
  address?.split('.').forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
  return Buffer.concat([header, query.subarray(12, end), ...(isA ? [rr] : [])]);
}
