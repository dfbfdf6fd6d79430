// A network namespace of the test's own (unshare -n), for running Debian's real nft against
// without touching the host's ruleset: held by a child that lives while its stdin is open (it
// ends with the test process, however that ends), entered with nsenter. Needs root.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { promisify } from 'node:util';
import { serviceForFile } from './rig.js';
import { until } from './until.js';

const run = promisify(execFile);

/** One element of a set as `nft -j list set` shows it. */
export interface NftElement {
  /** `192.0.2.7` or `192.0.2.0/24`. */
  addr: string;
  /** The element's timeout and what is left of it, in seconds. */
  timeoutS?: number;
  expiresS?: number;
}

export interface Netns {
  /** The nft command inside the namespace, for firewall.nftables.nft. */
  readonly nft: string;
  /** Runs an nft batch (nft -f -) in the namespace. */
  batch(text: string): Promise<void>;
  /** Runs a command in the namespace; its stdout. */
  exec(args: string[]): Promise<string>;
  /** Starts a command in the namespace (the caller ends it). */
  start(args: string[]): ChildProcess;
  /** The elements of a set; [] when the set or its table does not exist. */
  elements(family: string, table: string, set: string): Promise<NftElement[]>;
  /** Ends the namespace's holder: the namespace and its ruleset go with it. */
  stop(): Promise<void>;
}

type JsonVal = string | { prefix: { addr: string; len: number } } | { range: [string, string] };
type JsonElem = JsonVal | { elem: { val: JsonVal; timeout?: number; expires?: number } };

const valText = (v: JsonVal): string => (typeof v === 'string' ? v : 'prefix' in v ? `${v.prefix.addr}/${v.prefix.len}` : `${v.range[0]}-${v.range[1]}`);

export async function createNetns(): Promise<Netns> {
  const holder: ChildProcess = spawn('unshare', ['-n', 'cat'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const pid = holder.pid;
  if (pid === undefined) throw new Error('unshare -n did not start');
  const host = readlinkSync('/proc/self/ns/net');
  const ns = `/proc/${pid}/ns/net`;
  // Until unshare has run, the child is still in the host's namespace: never enter it then.
  await until(() => {
    if (holder.exitCode !== null) throw new Error(`unshare -n exited with ${holder.exitCode} (root needed)`);
    try {
      return readlinkSync(ns) !== host;
    } catch {
      return false;
    }
  }, 'the test network namespace');
  const argv = ['--net=' + ns, 'nft'];
  const start = (args: string[]) => spawn('nsenter', ['--net=' + ns, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  return {
    nft: `nsenter ${argv.join(' ')}`,
    start,
    exec: async (args) => (await run('nsenter', ['--net=' + ns, ...args])).stdout,
    batch: (text) =>
      new Promise((resolve, reject) => {
        const p = start(['nft', '-f', '-']);
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`nft: ${err}`))));
        p.stdin.end(text);
      }),
    async elements(family, table, set) {
      let out: string;
      try {
        out = (await run('nsenter', [...argv, '-j', 'list', 'set', family, table, set])).stdout;
      } catch (err) {
        if (/No such file or directory/.test((err as { stderr?: string }).stderr ?? '')) return [];
        throw err;
      }
      const parsed = JSON.parse(out) as { nftables: { set?: { elem?: JsonElem[] } }[] };
      const elems = parsed.nftables.find((x) => x.set)?.set?.elem ?? [];
      return elems.map((e) => (typeof e === 'object' && 'elem' in e ? { addr: valText(e.elem.val), timeoutS: e.elem.timeout, expiresS: e.elem.expires } : { addr: valText(e) }));
    },
    async stop() {
      if (holder.exitCode !== null) return;
      const gone = new Promise((r) => holder.once('exit', r));
      holder.stdin?.end();
      await gone;
    },
  };
}

/** For a test file: a namespace made before its tests and removed after them. Declare it
 *  before the rig, so proxies (and their last nft batches) stop first. */
export const netnsForFile = () => serviceForFile('ns', createNetns);
