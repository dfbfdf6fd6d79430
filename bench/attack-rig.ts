// The attack benchmark's rig: a real Dovecot with its auth penalty on as shipped, the shipped
// config (config/mailgate.yaml) rewritten only where it must be to run here, one in-process
// mailgate per scenario on a skewed clock with its log captured, and the client process
// (bench/attack-clients.mjs). Everything it starts comes with the stop() or close() that ends it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { parseDocument } from 'yaml';
import type * as LoadModule from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import type * as LoggerModule from '../src/logging/logger.js';
import type * as MainModule from '../src/main.js';
import { startDovecot, type DovecotInstance, type DovecotUser } from '../test/helpers/dovecot.js';

/** The compiled build (`npm run bench` builds first): what operators run. Typed from src/. */
const dist = async <T>(path: string): Promise<T> => (await import(new URL(`../dist/${path}`, import.meta.url).pathname)) as T;

export const SHIPPED_CONFIG = new URL('../config/mailgate.yaml', import.meta.url).pathname;

/** Dovecot as shipped where it defends logins: its anvil auth penalty (2 s doubling per failing
 *  client address, up to 15 s) and auth_failure_delay (2 s) on, which the test helper switches
 *  off unless asked. login_trusted_networks holds mailgate's own source address only, as the
 *  README tells operators; the benchmark's clients (127.x.y.z, never 127.0.0.1) stay untrusted. */
export const DOVECOT_SETUP = 'stock auth penalty and auth_failure_delay, login_trusted_networks = 127.0.0.1';

export function startStockDovecot(users: DovecotUser[]): Promise<DovecotInstance> {
  return startDovecot({ users, penalty: true, trustedNetworks: ['127.0.0.1'] });
}

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Dovecot's port for a backend, by the protocol of the listeners that use it and its TLS mode. */
function dovecotPort(d: DovecotInstance, protocol: string, implicitTls: boolean): number {
  const p = { imap: ['imap', 'imaps'], pop3: ['pop3', 'pop3s'], smtp: ['submission', 'submissions'] }[protocol];
  if (!p) throw new Error(`attack bench: no Dovecot service for protocol ${protocol}`);
  return d.ports[p[implicitTls ? 1 : 0] as keyof DovecotInstance['ports']];
}

/** config/mailgate.yaml as shipped, checked with the project's loader, then rewritten only where
 *  this machine needs it: listeners on 127.0.0.1:0 (protocols and TLS modes kept), backends at
 *  the test Dovecot, its certificate instead of a generated one, the admin endpoint on port 0.
 *  Every limit stays as shipped. Returns the validated config and the rewritten document. */
export async function shippedConfig(d: DovecotInstance): Promise<{ cfg: Config; doc: Doc }> {
  const { loadConfig, parseConfig } = await dist<typeof LoadModule>('config/load.js');
  loadConfig(SHIPPED_CONFIG); // throws if the shipped file itself is invalid
  const doc = parseDocument(readFileSync(SHIPPED_CONFIG, 'utf8')).toJS() as Doc;
  const listeners = doc.listeners as Doc[];
  for (const l of listeners) l.listen = '127.0.0.1:0';
  for (const [name, b] of Object.entries(doc.backends as Record<string, Doc>)) {
    const protocol = listeners.find((l) => l.backend === name)?.protocol;
    if (!protocol) continue;
    const port = dovecotPort(d, protocol, b.tls === 'implicit');
    if (b.servers) b.servers = [`127.0.0.1:${port}`];
    else Object.assign(b, { host: '127.0.0.1', port });
    if (b.tls && b.tls !== 'none') Object.assign(b, { ca: d.cert.certPath, servername: 'localhost' });
  }
  doc.tls = { ...(doc.tls ?? {}), cert: d.cert.certPath, key: d.cert.keyPath };
  delete doc.tls.devCertificate;
  if (doc.admin) doc.admin.listen = '127.0.0.1:0';
  if (doc.store?.type && doc.store.type !== 'memory') throw new Error(`attack bench: the shipped store is ${doc.store.type}; only memory runs here`);
  return { cfg: parseConfig(doc, {}), doc };
}

export interface LogLine {
  event?: string;
  outcome?: string;
  ip?: string;
  user?: string;
  rule?: string;
  [k: string]: unknown;
}

/** Outcomes of an auth.attempt line that never reached the backend. */
export const NOT_REACHED = new Set(['limited', 'invalid']);

export interface ScenarioProxy {
  /** mailgate's log lines so far, parsed. */
  lines: LogLine[];
  /** The IMAP listener the clients dial. */
  target: { port: number; tls: 'implicit' | 'starttls' };
  /** Moves mailgate's clock forward; timers keep running in real time. */
  advance(ms: number): void;
  simulatedMs(): number;
  stop(): Promise<void>;
}

/** A fresh mailgate in this process, on the real clock plus a skew the scenario jumps forward
 *  (a pure manual clock would freeze the tarpit); its log lines captured as objects. */
export async function startScenarioProxy(cfg: Config): Promise<ScenarioProxy> {
  const { startProxy } = await dist<typeof MainModule>('main.js');
  const { createLogger } = await dist<typeof LoggerModule>('logging/logger.js');
  const lines: LogLine[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  let skew = 0;
  // info: auth.attempt and session.refused are info lines, whatever log.level the file sets.
  const proxy = await startProxy(cfg, { log: createLogger('info', dest), clock: { now: () => Date.now() + skew } });
  const imaps = cfg.listeners.filter((l) => l.protocol === 'imap');
  const imap = imaps.find((l) => l.tls === 'implicit') ?? imaps.find((l) => l.tls === 'starttls');
  if (!imap) {
    await proxy.stop();
    throw new Error('attack bench: the shipped config has no IMAP listener with TLS');
  }
  return {
    lines,
    target: { port: proxy.addresses[imap.name]!.port, tls: imap.tls as 'implicit' | 'starttls' },
    advance: (ms) => void (skew += ms),
    simulatedMs: () => skew,
    stop: () => proxy.stop(),
  };
}

/** Waits until `count(lines)` reaches n, or timeoutMs passes (returns whether it did). */
export async function waitForLines(lines: LogLine[], count: (l: LogLine[]) => number, n: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (count(lines) < n) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

export interface Attempt {
  source: string;
  user: string;
  pass: string;
}

export interface ClientResult {
  outcome: 'ok' | 'fail' | 'limited' | 'refused' | 'timeout' | 'error' | 'other';
  ms: number;
  /** Trickle logins: when it started, ms after the trickle began. */
  at?: number;
  loginSent?: boolean;
  error?: string;
}

/** One client process (bench/attack-clients.mjs), commands by id. */
export class ClientProcess {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, (v: Doc) => void>();
  private nextId = 1;
  private readonly exited: Promise<void>;

  constructor() {
    this.child = spawn(process.execPath, [new URL('./attack-clients.mjs', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = new Promise((r) => {
      this.child.once('exit', () => r());
      this.child.once('error', () => r()); // could not start: every command fails below
    });
    this.child.stdin!.on('error', () => undefined); // a dead child: its pending commands fail
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const msg = JSON.parse(l) as Doc;
      const done = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      done?.(msg);
    });
    void this.exited.then(() => {
      for (const done of this.pending.values()) done({ error: 'client process exited' });
      this.pending.clear();
    });
  }

  private send(cmd: Doc, id = this.nextId++): Promise<Doc> {
    return new Promise((resolve, reject) => {
      this.pending.set(id, (msg) => (msg.error ? reject(new Error(`attack clients: ${msg.error}`)) : resolve(msg)));
      this.child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  /** Every attempt once, at most `concurrency` at a time, spread over at least spreadMs; one
   *  result per attempt, in order. */
  async batch(target: ScenarioProxy['target'], attempts: Attempt[], concurrency: number, o: { giveUpMs?: number; spreadMs?: number } = {}): Promise<ClientResult[]> {
    if (attempts.length === 0) return [];
    return (await this.send({ op: 'batch', target, attempts, concurrency, giveUpMs: o.giveUpMs ?? 30_000, spreadMs: o.spreadMs ?? 0 })).results as ClientResult[];
  }

  /** Legitimate logins at `rate`/s until stop(), which returns what each one saw. */
  async trickle(target: ScenarioProxy['target'], logins: Attempt[], rate: number): Promise<{ stop(): Promise<ClientResult[]> }> {
    const id = this.nextId++;
    await this.send({ op: 'trickle', target, logins, rate }, id);
    return { stop: async () => (await this.send({ op: 'stop' }, id)).results as ClientResult[] };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}
