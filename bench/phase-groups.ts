// Address groups (issue 18): what GeoIP, a Tor-style file group and a DNS blocklist cost a login.
// Closed-loop plaintext IMAP logins (right passwords) through a PROXY-protocol listener, so
// clients can be the public networks a database maps or a blocklist lists (loopback sources
// never are), against mailgate without groups and with each kind of group, interleaved rounds
// in one run. Per target: logins/s, latency, mailgate's CPU per login (/proc), its blocklist
// and group counters (/metrics); and GeoIp.lookup's cost per lookup measured in process.
import { execFile, execFileSync } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DovecotInstance, DovecotUser } from '../test/helpers/dovecot.js';
import { startDnsmasq, startScriptedDns } from '../test/helpers/dnsmasq.js';
import { buildWorld, geoipLookupCost, HITS, HOME, HOSTING, LISTED, MAIN, NETS_V4, NETS_V6, TOR, TOR_EVERY, type World } from './groups-world.js';
import { pctOf, round } from './lib.js';
import { cpuSeconds, cpuSplit } from './procstat.js';
import { mailgateRules, startMailgate, type Proc } from './services.js';

const run = promisify(execFile);
const CLIENTS = new URL('./proxied-logins.mjs', import.meta.url).pathname;

export interface GroupsSettings {
  rounds: number;
  warmupMs: number;
  durationMs: number;
  concurrency: number;
  /** One unmeasured run per target first (mailgate's JIT; the blocklist hits' cache). */
  warmPassMs: number;
  /** GeoIp.lookup calls per timed pass of the micro-measure. */
  lookups: number;
}

/** A failures rule for the clients of one group, as the README's worked examples write them:
 *  never reached by right passwords, but checked (and its counter read) on every login of the group. */
const groupRule = (group: string, limit: number) => ({ name: `${group}-failures`, key: 'ip', count: 'failures', limit, window: '1h', block: '1d', only: [group] });

const ZONE = 'authbl.test';
const SILENT_ZONE = 'silent.test';
/** limits.dnsbl.timeout, the default. */
const TIMEOUT_MS = 300;

interface Target {
  name: string;
  what: string;
  proc: Proc;
  stream: keyof World['streams'];
  /** Distinct addresses in the stream: a run that needs more repeats some (counted). */
  capacity: number;
  /** The blocklist zone whose counters are this target's. */
  zone?: string;
  /** dnsmasq's process: its CPU per login is reported beside mailgate's. */
  dnsPids?: number[];
  /** Where the stream starts (a target sharing a process and stream with another). */
  startOffset?: number;
  /** Clients wait this long after the greeting before LOGIN. */
  pauseMs?: number;
  /** The warm pass's stream, when not the target's own. */
  warmStream?: keyof World['streams'];
}

/** mailgate's counters of interest from /metrics, by series (name + labels). */
async function counters(adminPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^(mailgate_(?:dnsbl_queries_total|dnsbl_query_seconds_\w+|group_decisions_total))(\{[^}]*\})? (\S+)$/gm)) out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  return out;
}

interface Acc {
  sessionMs: number[];
  loginMs: number[];
  ok: number;
  failed: number;
  seconds: number;
  sessions: number;
  cpu: number;
  dnsCpu: number;
  counters: Map<string, number>;
  loadgenCpu: number[];
  samples: string[];
  /** Each measured run's logins/s and mailgate CPU ms per login: the spread of the rounds. */
  runs: { perSec: number; cpuMs: number }[];
  /** Sessions so far: where the next run starts in the address stream. */
  offset: number;
}

/** One run of the load generator against `t`, its figures added to `a`; a warm pass (`warm`)
 *  only moves the stream's offset on, so the measured runs meet addresses it did not. */
async function once(t: Target, s: GroupsSettings, users: DovecotUser[], streams: World['streams'], a: Acc, warm = false): Promise<void> {
  const pids = t.proc.pids();
  const cpu0 = cpuSplit(pids);
  const dns0 = cpuSeconds(t.dnsPids ?? []);
  const m0 = await counters(t.proc.adminPort!);
  const spec = { port: t.proc.ports.imap, concurrency: s.concurrency, warmupMs: warm ? 0 : s.warmupMs, durationMs: warm ? s.warmPassMs * (t.warmStream ? 3 : 1) : s.durationMs, users, addressFile: streams[warm ? (t.warmStream ?? t.stream) : t.stream], offset: a.offset, pauseMs: t.pauseMs ?? 0 };
  const { stdout } = await run(process.execPath, [CLIENTS, JSON.stringify(spec)], { maxBuffer: 256 * 1024 * 1024, timeout: 300_000 });
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!);
  if (warm && t.warmStream) return;
  a.offset += r.sessionsAll;
  if (warm) return;
  const cpu1 = cpuSplit(pids);
  const m1 = await counters(t.proc.adminPort!);
  a.cpu += cpu1.user + cpu1.sys - cpu0.user - cpu0.sys;
  a.runs.push({ perSec: round(r.ok / r.seconds, 1)!, cpuMs: round(((cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) * 1000) / r.sessionsAll, 3)! });
  a.dnsCpu += cpuSeconds(t.dnsPids ?? []) - dns0;
  for (const [k, v] of m1) if (v !== (m0.get(k) ?? 0)) a.counters.set(k, (a.counters.get(k) ?? 0) + v - (m0.get(k) ?? 0));
  a.sessionMs.push(...r.raw.sessionMs);
  a.loginMs.push(...r.raw.loginMs);
  a.ok += r.ok;
  a.failed += r.total - r.ok;
  a.seconds += r.seconds;
  a.sessions += r.sessionsAll;
  a.loadgenCpu.push(r.loadgenCpuPct);
  a.samples.push(...r.samples);
}

const pcts = (xs: number[]) => {
  const s = Array.from(Float64Array.from(xs).sort());
  return { p50: round(pctOf(s, 50)), p99: round(pctOf(s, 99)), max: round(s.at(-1)) };
};

/** The blocklist's histogram for `zone` over the runs: queries, mean ms, and the share
 *  answered within each bucket's bound (mailgate_dnsbl_query_seconds; cache hits not in it). */
function dnsblFigures(c: Map<string, number>, zone: string, sessions: number) {
  const get = (name: string, extra = '') => {
    for (const [k, v] of c) if (k.startsWith(`mailgate_dnsbl_query_seconds_${name}{`) && k.includes(`zone="${zone}"`) && k.includes(extra)) return v;
    return 0;
  };
  const count = get('count');
  const byResult: Record<string, number> = {};
  for (const [k, v] of c) {
    const m = new RegExp(`^mailgate_dnsbl_queries_total\\{zone="${zone.replace('.', '\\.')}",result="(\\w+)"\\}$`).exec(k);
    if (m) byResult[m[1]!] = round(v / sessions, 3)!;
  }
  const within: Record<string, number | null> = {};
  for (const le of ['0.001', '0.0025', '0.005', '0.01', '0.05', '0.25', '0.5']) within[`${Number(le) * 1000}ms`] = count ? round(get('bucket', `le="${le}"`) / count, 3) : null;
  return { queries: count, queriesPerLogin: round(count / sessions, 3), byResultPerLogin: byResult, meanMs: count ? round((get('sum') * 1000) / count, 3) : null, within };
}

/** dnsmasq's answer time seen from a client with nothing else running (the phase's start):
 *  `n` queries one at a time, for listed names and for names it answers NXDOMAIN. */
async function probeDns(server: string, listed: string[], clean: string[]) {
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([server]);
  const time = async (names: string[]) => {
    const ms: number[] = [];
    for (const name of names) {
      const t = performance.now();
      await r.resolve4(name).catch(() => null);
      ms.push(performance.now() - t);
    }
    return pcts(ms);
  };
  return { queries: listed.length, listed: await time(listed), clean: await time(clean) };
}

const IDLE_MS = 3000;

/** CPU ms per second of each process over IDLE_MS without clients. */
async function idleCpu(procs: Proc[]): Promise<Map<Proc, number | null>> {
  const before = procs.map((p) => cpuSeconds(p.pids()));
  await new Promise((r) => setTimeout(r, IDLE_MS));
  return new Map(procs.map((p, i) => [p, round(((cpuSeconds(p.pids()) - before[i]!) * 1e6) / IDLE_MS, 2)]));
}

export interface GroupsRow {
  target: string;
  what: string;
  logins: number;
  failed: number;
  perSec: number | null;
  sessionMs: ReturnType<typeof pcts>;
  loginMs: ReturnType<typeof pcts>;
  cpuMsPerLogin: number | null;
  /** dnsmasq's CPU per login (the blocklist targets): the DNS server's share, elsewhere in production. */
  dnsCpuMsPerLogin: number | null;
  /** mailgate's CPU ms per second with no client (after the rounds). */
  idleCpuMsPerSec: number | null;
  vsBaseline: { perSec: number | null; cpuMs: number | null; sessionP50Ms: number | null; loginP50Ms: number | null } | null;
  /** Group decisions per login, by group (mailgate_group_decisions_total): the share of
   *  logins whose client was in the group. */
  groupShare: Record<string, number>;
  dnsbl: ReturnType<typeof dnsblFigures> | null;
  /** Sessions that reused an address of the stream (beyond its distinct addresses). */
  repeatedAddresses: number;
  loadgenCpuPct: number | null;
  /** Per measured run, in round order. */
  runs: Acc['runs'];
  samples?: string[];
}

function row(t: Target, a: Acc): GroupsRow {
  const share: Record<string, number> = {};
  for (const [k, v] of a.counters) {
    const m = /^mailgate_group_decisions_total\{group="([^"]+)",result="allow"\}$/.exec(k);
    if (m) share[m[1]!] = round(v / a.sessions, 3)!;
  }
  return {
    target: t.name,
    what: t.what,
    logins: a.ok,
    failed: a.failed,
    perSec: round(a.ok / a.seconds, 1),
    sessionMs: pcts(a.sessionMs),
    loginMs: pcts(a.loginMs),
    cpuMsPerLogin: round((a.cpu * 1000) / a.sessions, 3),
    dnsCpuMsPerLogin: t.dnsPids ? round((a.dnsCpu * 1000) / a.sessions, 3) : null,
    idleCpuMsPerSec: null,
    vsBaseline: null,
    groupShare: share,
    dnsbl: t.zone ? dnsblFigures(a.counters, t.zone, a.sessions) : null,
    repeatedAddresses: Math.max(0, a.offset - t.capacity),
    loadgenCpuPct: a.loadgenCpu.length ? Math.max(...a.loadgenCpu) : null,
    runs: a.runs,
    ...(a.samples.length ? { samples: a.samples.slice(0, 3) } : {}),
  };
}

export interface GroupsPhaseEnv {
  dir: string;
  dovecot: DovecotInstance;
  users: DovecotUser[];
  log: (s: string) => void;
}

/** Builds the world, starts dnsmasq, the silent responder and five mailgates (the blocklist's
 *  miss, listed and hit streams share one; the paused clients use the one without groups),
 *  measures, stops what it started. */
export async function groupsPhase(env: GroupsPhaseEnv, s: GroupsSettings) {
  const started: { stop(): Promise<void> }[] = [];
  try {
    mkdirSync(env.dir, { recursive: true });
    const w = buildWorld(env.dir);
    env.log(`  world: ${NETS_V4} IPv4 /24s + ${NETS_V6} IPv6 /48s (asn.mmdb ${round(w.dbBytes.asn / 1048576, 1)} MiB, country.mmdb ${round(w.dbBytes.country / 1048576, 1)} MiB), built in ${w.buildSeconds} s`);
    const silent = await startScriptedDns('silent');
    started.push(silent);
    // TTL 1 s, kept 10 s by mailgate (its floor): the listed stream's 25,000 addresses may
    // come round again in a later round and are then asked again (a miss), as counted.
    const dns = await startDnsmasq({ zones: [ZONE], records: w.listedRecords(ZONE), ttl: 1 });
    started.push(dns);
    const dnsPids = execFileSync('pgrep', ['-f', `dnsmasq .*--port=${dns.port} `], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    const mg = async (name: string, limits: Record<string, unknown> = {}) => {
      const p = await startMailgate({ name, dir: join(env.dir, 'mailgate'), dovecot: env.dovecot, proxyProtocol: true, admin: true, limits });
      started.push(p);
      return p;
    };
    const dnsbl = (zone: string, server: string) => ({ dnsbl: { servers: [server], timeout: `${TIMEOUT_MS}ms` }, groups: [{ name: 'authbl', dnsbl: { zone } }], rules: [groupRule('authbl', 1), ...mailgateRules()] });
    const base = await mg('mailgate-groups-none');
    const geo = await mg('mailgate-groups-geoip', {
      geoip: { asn: w.asnDb, country: w.countryDb },
      groups: [{ name: 'hosting', asn: HOSTING }, { name: 'home', country: HOME }],
      rules: [groupRule('hosting', 3), groupRule('home', 10), ...mailgateRules()],
    });
    const tor = await mg('mailgate-groups-tor', { groups: [{ name: 'tor', file: w.torFile, together: true }], rules: [groupRule('tor', 10), ...mailgateRules()] });
    const bl = await mg('mailgate-groups-dnsbl', dnsbl(ZONE, dns.server));
    // Straight at the silent responder: dnsmasq in front of it answers an error at once when
    // 150 queries wait for it (--dns-forward-max), and then nobody waits at all.
    const quiet = await mg('mailgate-groups-dnsbl-silent', dnsbl(SILENT_ZONE, `127.0.0.1:${silent.port}`));
    const targets: Target[] = [
      { name: 'no-groups', what: 'no groups (baseline)', proc: base, stream: 'main', capacity: MAIN },
      { name: 'geoip', what: `asn + country groups, a rule each; every client a new address (${NETS_V4} networks)`, proc: geo, stream: 'main', capacity: MAIN },
      { name: 'tor-file', what: `file of ${TOR} exits, together, a rule; 1 client in ${TOR_EVERY} a Tor exit`, proc: tor, stream: 'tor', capacity: MAIN },
      { name: 'dnsbl-miss-clean', what: 'blocklist, every client a new address, not listed (NXDOMAIN)', proc: bl, stream: 'main', capacity: MAIN, zone: ZONE, dnsPids },
      { name: 'dnsbl-miss-listed', what: 'blocklist, every client a new address, listed (127.0.0.2), its rule applies', proc: bl, stream: 'listed', capacity: LISTED, zone: ZONE, dnsPids },
      { name: 'dnsbl-hit', what: `blocklist, ${HITS} addresses again and again (answers cached)`, proc: bl, stream: 'hits', capacity: Infinity, zone: ZONE, dnsPids },
      { name: 'dnsbl-silent', what: `blocklist whose server never answers, timeout ${TIMEOUT_MS} ms, every client a new address`, proc: quiet, stream: 'main', capacity: MAIN, zone: SILENT_ZONE, warmStream: 'local' },
      // The silent list's pace without a list: what ~50 logins/s with 16 connections waiting
      // cost mailgate anyway (a process that wakes for each event alone costs more per login).
      { name: 'no-groups-paused', what: `no groups, clients pausing ${TIMEOUT_MS} ms before LOGIN (the silent list's pace)`, proc: base, stream: 'main', capacity: MAIN, startOffset: MAIN - 20_000, pauseMs: TIMEOUT_MS },
    ];
    const probe = await probeDns(dns.server, Object.keys(w.listedRecords(ZONE)).slice(0, 500), Array.from({ length: 500 }, (_, k) => `${w.unmapped(k).split('.').reverse().join('.')}.${ZONE}`));
    env.log(`  dnsmasq alone, one query at a time: p50 ${probe.listed.p50} ms listed, ${probe.clean.p50} ms not listed`);
    env.log(`  dnsmasq ${dns.server} (${LISTED} listed names), mailgates: ${targets.map((t) => `${t.name} ${t.proc.ports.imap}`).join(', ')}`);
    const accs = new Map<string, Acc>(targets.map((t) => [t.name, { sessionMs: [], loginMs: [], ok: 0, failed: 0, seconds: 0, sessions: 0, cpu: 0, dnsCpu: 0, counters: new Map(), loadgenCpu: [], samples: [], runs: [], offset: t.startOffset ?? 0 }]));
    // The warm pass puts every one of the hits' addresses in the cache; the other streams go on
    // after it. The silent list's process warms up on private addresses (never sent to a list):
    // at its ~50 logins/s its code would otherwise still be cold in the measured runs.
    for (const t of targets) {
      const a = accs.get(t.name)!;
      do await once(t, s, env.users, w.streams, a, true);
      while (t.stream === 'hits' && a.offset < HITS);
    }
    for (let r = 0; r < s.rounds; r++) {
      for (const t of targets.map((_, i) => targets[(i + r) % targets.length]!)) {
        const a = accs.get(t.name)!;
        await once(t, s, env.users, w.streams, a);
        env.log(`  groups c=${s.concurrency} ${t.name.padEnd(18)} round ${r + 1}: ${Math.round(a.ok / a.seconds)}/s so far${a.failed ? `, ${a.failed} failed` : ''}`);
      }
    }
    const rows = targets.map((t) => row(t, accs.get(t.name)!));
    // A process's CPU with no client at all (timers, GC, the admin endpoint unasked): a share
    // of every login's CPU, large where logins are few (the silent blocklist's ~50/s).
    const idle = await idleCpu([...new Set(targets.map((t) => t.proc))]);
    for (const r of rows) r.idleCpuMsPerSec = idle.get(targets.find((t) => t.name === r.target)!.proc) ?? null;
    const b = rows[0]!;
    for (const x of rows.slice(1)) {
      x.vsBaseline = {
        perSec: round(x.perSec! / b.perSec!, 3),
        cpuMs: round(x.cpuMsPerLogin! - b.cpuMsPerLogin!, 3),
        sessionP50Ms: round(x.sessionMs.p50! - b.sessionMs.p50!, 2),
        loginP50Ms: round(x.loginMs.p50! - b.loginMs.p50!, 2),
      };
    }
    env.log(`  GeoIp.lookup: ${s.lookups} lookups a pass, in process`);
    const geoip = await geoipLookupCost(w, s.lookups);
    return { settings: s, world: { netsV4: NETS_V4, netsV6: NETS_V6, dbBytes: w.dbBytes, listed: LISTED, tor: TOR, torEvery: TOR_EVERY, hosting: HOSTING.length, home: HOME }, timeoutMs: TIMEOUT_MS, dnsProbe: probe, rows, geoip };
  } finally {
    await Promise.allSettled(started.reverse().map((p) => p.stop()));
  }
}
