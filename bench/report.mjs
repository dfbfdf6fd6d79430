// Renders a benchmark result (bench/results/*.json) as Markdown tables and checks the targets
// of issue 8 (and, for the attacks phase, those of issue 14; for the no-read flood, issue 15's;
// the policy-server phase of issue 17 and the groups phase of issue 18 have no targets, only their ratios). Used by bench/run.ts for the summary it prints, and on its own:
// `node bench/report.mjs bench/results/FILE.json` (e.g. to refresh BENCHMARKS.md).
import { readFileSync } from 'node:fs';

const f = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(d));
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b);
const pctTxt = (r) => (r === null ? '–' : `${Math.round(r * 100)}%`);
const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const MG = ['mailgate-memory', 'mailgate-redis'];
const tlsName = (t) => (t === 'none' ? 'plain' : 'STARTTLS');

function loginsTable(rows) {
  const by = (tls, c, t) => rows.find((r) => r.tls === tls && r.concurrency === c && r.target === t);
  const out = [];
  for (const r of rows) {
    const d = by(r.tls, r.concurrency, 'direct');
    const n = by(r.tls, r.concurrency, 'nginx');
    out.push([
      tlsName(r.tls), r.concurrency, r.target, f(r.perSec), f(r.p50ms, 2), f(r.p99ms, 2),
      r.target === 'direct' ? '–' : pctTxt(ratio(r.perSec, d?.perSec)),
      r.target === 'direct' || r.target === 'nginx' ? '–' : pctTxt(ratio(r.perSec, n?.perSec)),
      r.cpuMsPerLogin == null ? '–' : `${f(r.cpuMsPerLogin, 3)} (${f(r.cpuSysMsPerLogin, 3)})`,
      r.cpuMsPerLogin ? f(1000 / r.cpuMsPerLogin) : '–',
      r.target.startsWith('mailgate') ? pctTxt(ratio(r.cpuMsPerLogin, n?.cpuMsPerLogin)) : '–',
      f(r.backendCpuMsPerLogin, 3), `${f(r.loadgenCpuPct)}%`, r.failed ? String(r.failed) : '0',
    ]);
  }
  return table(['TLS', 'clients', 'target', 'logins/s', 'p50 ms', 'p99 ms', 'vs direct', 'vs nginx', 'proxy CPU ms/login (system)', 'logins/s per proxy core', 'CPU vs nginx', 'Dovecot CPU ms/login', 'loadgen CPU', 'failed'], out);
}

/** Worker mode against one process (both the memory store): logins/s and CPU per login,
 *  primary and workers summed. */
function workersTable(rows) {
  const out = [];
  for (const w of rows.filter((r) => /^mailgate-\d+-workers$/.test(r.target))) {
    const one = rows.find((r) => r.tls === w.tls && r.concurrency === w.concurrency && r.target === 'mailgate-memory');
    if (!one) continue;
    out.push([
      tlsName(w.tls), w.concurrency, w.target.replace(/^mailgate-|-workers$/g, ''), f(one.perSec), f(w.perSec), pctTxt(ratio(w.perSec, one.perSec)),
      f(one.cpuMsPerLogin, 3), f(w.cpuMsPerLogin, 3), pctTxt(ratio(w.cpuMsPerLogin, one.cpuMsPerLogin)), `${f(one.backendCpuMsPerLogin, 3)} / ${f(w.backendCpuMsPerLogin, 3)}`,
      `${f(one.loadgenCpuPct)}% / ${f(w.loadgenCpuPct)}%`,
    ]);
  }
  return table(['TLS', 'clients', 'workers', 'logins/s, 1 process', 'logins/s, workers', 'workers vs 1', 'CPU ms/login, 1 process', 'CPU ms/login, workers (primary + workers)', 'CPU per login vs 1', 'Dovecot CPU ms/login (1 / workers)', 'loadgen CPU (1 / workers)'], out);
}

/** The memory store in the primary, asked over IPC (bench/limiter-ipc.mjs). */
function limiterIpcTable(rows) {
  const decisions = rows.filter((r) => r.store);
  const trips = rows.filter((r) => r.roundTrip);
  return [
    table(['store', 'in flight', 'decisions/s', 'p50 ms', 'p99 ms', 'worker CPU µs/decision', 'primary CPU µs/decision'],
      decisions.map((r) => [r.store, r.concurrency, f(r.perSec), f(r.p50ms, 3), f(r.p99ms, 3), f(r.workerCpuUsPerDecision, 1), f(r.primaryCpuUsPerDecision, 1)])),
    table(['IPC round trip', 'in flight', 'µs per call (wall)', 'worker CPU µs per call'], trips.map((r) => [r.roundTrip, r.concurrency, f(r.usPerCall, 1), f(r.workerCpuUsPerCall, 1)])),
  ].join('\n\n');
}

function transferTable(rows) {
  const by = (p, t) => rows.find((r) => r.proto === p && r.target === t);
  return table(
    ['protocol', 'target', 'MiB/s (median)', 'best', 'vs direct', 'vs nginx', 'proxy CPU ms/MiB'],
    rows.map((r) => [
      r.proto === 'imap' ? `IMAP FETCH ${f(r.bytes / 1048576, 0)} MiB` : `POP3 RETR ${f(r.bytes / 1048576, 0)} MiB`, r.target, f(r.medianMBps), f(r.bestMBps),
      r.target === 'direct' ? '–' : pctTxt(ratio(r.medianMBps, by(r.proto, 'direct')?.medianMBps)),
      r.target.startsWith('mailgate') ? pctTxt(ratio(r.medianMBps, by(r.proto, 'nginx')?.medianMBps)) : '–', f(r.cpuMsPerMB, 2),
    ]),
  );
}

/** RSS growth per connection between the smaller and the larger count (fresh processes
 *  both): the per-connection slope, without the heap's one-off growth. */
export function marginalKiB(rows, r) {
  const smaller = rows.filter((x) => x.kind === r.kind && x.proxy === r.proxy && x.held < r.held).sort((a, b) => b.held - a.held)[0];
  if (!smaller) return null;
  return ((r.loadedKiB - r.baseKiB) - (smaller.loadedKiB - smaller.baseKiB)) / (r.held - smaller.held);
}

function memoryTable(rows) {
  const by = (k, n, p) => rows.find((r) => r.kind === k && r.requested === n && r.proxy === p);
  return table(
    ['connections', 'kind', 'proxy', 'held', 'RSS before MiB', 'RSS held MiB', 'KiB/conn', 'vs nginx', 'marginal KiB/conn'],
    rows.map((r) => [
      r.requested, r.kind, r.proxy, r.held, f(r.baseKiB / 1024, 1), f(r.loadedKiB / 1024, 1), f(r.perConnKiB, 1),
      r.proxy === 'nginx' ? '–' : pctTxt(ratio(r.perConnKiB, by(r.kind, r.requested, 'nginx')?.perConnKiB)), f(marginalKiB(rows, r), 1),
    ]),
  );
}

function profileText(profiles) {
  const out = [];
  for (const [name, p] of Object.entries(profiles)) {
    out.push(`${name}: ${p.busyPct}% busy; event loop busy without a break up to ${(p.longestBusyMs ?? []).join(', ') || '?'} ms (${p.busyOver20ms ?? '?'} stretches > 20 ms)`);
    out.push(...p.selfTop.slice(0, 10).map((x) => `  ${String(x.pct).padStart(5)}%  ${x.frame}`));
  }
  return ['```', ...out, '```'].join('\n');
}

function limiterTable(rows) {
  return table(
    ['store', 'in flight', 'decisions/s', 'p50 ms', 'p99 ms', 'Redis scripts/decision', 'round trips/decision', 'Redis µs in scripts/decision', 'redis-server CPU µs/decision', 'scripts by primary'],
    rows.map((r) => [
      r.store, r.concurrency ?? 1, f(r.perSec), f(r.p50ms, 3), f(r.p99ms, 3),
      // Rows from before the sharded layout counted scripts as round trips (one per phase then).
      f(r.scriptsPerDecision ?? r.redisRoundTripsPerDecision, 2), f(r.roundTripsPerDecision ?? r.redisRoundTripsPerDecision, 2),
      f(r.redisUsecPerDecision, 1), f(r.redisCpuUsPerDecision, 1), r.scriptShareByPrimary ? r.scriptShareByPrimary.map((x) => `${Math.round(x * 100)}%`).join(' / ') : '–',
    ]),
  );
}

function floodTable(rows) {
  return table(
    ['target', 'attackers', 'legit ok (alone)', 'p99 alone ms', 'legit ok (flood)', 'p99 flood ms', 'p99 ratio', 'attack/s', 'attack: wrong password', 'attack: refused', 'proxy CPU'],
    rows.map((r) => [
      r.target, `${r.attackSources} addresses`, `${r.unloaded.ok}/${r.unloaded.attempts}`, f(r.unloaded.p99ms, 2), `${r.underFlood.ok}/${r.underFlood.attempts}`, f(r.underFlood.p99ms, 2), f(r.p99Ratio, 2),
      f(r.attack.perSec), r.attack.fail, r.attack.limited, `${f(r.proxyCpuPct)}%`,
    ]),
  );
}

/** What one attempt costs the proxy (bench/phase-flood.ts attemptCosts, issue 22). */
function costTable(rows) {
  return table(
    ['target', 'attempt', 'attempts', 'reached the backend', 'proxy CPU ms/attempt', 'vs served'],
    rows.map((r) => {
      // The bare refuser is compared with the bare relay's served login.
      const of = r.target === 'node-floor-refuse' ? 'node-floor' : r.target;
      const served = rows.find((x) => x.target === of && x.kind === 'served')?.cpuMsPerAttempt;
      return [r.target, r.kind, r.attempts, r.reachedBackend, f(r.cpuMsPerAttempt, 3), r.kind === 'served' || !served ? '–' : `${f((r.cpuMsPerAttempt / served) * 100)}%`];
    }),
  );
}

/** The no-read flood (bench/phase-noread.ts, issue 15): one row per target and flooder count. */
function noreadTable(rows) {
  return table(
    ['target', 'no-read flooders', 'logins ok', 'p50 ms', 'p99 ms', 'max ms', 'p99 vs alone', 'flood connections (ended by the server)', 'flood MiB written', 'server CPU'],
    rows.map((r) => [
      r.target, r.flooders ? `${r.flooders} from ${r.addresses} addresses` : 'none (alone)', `${r.probe.ok}/${r.probe.attempts}`, f(r.probe.p50ms, 1), f(r.probe.p99ms, 1), f(r.probe.maxMs, 1),
      r.flooders ? f(r.p99Ratio, 2) : '–', r.flood ? `${r.flood.opened} (${r.flood.endedByServer})` : '–', r.flood ? f(r.flood.bytesWritten / 1048576, 1) : '–', r.cpuPct == null ? '–' : `${f(r.cpuPct)}%`,
    ]),
  );
}

const okOf = (t) => (t ? `${t.ok}/${t.of}${t.ok < t.of ? ` (${Object.entries(t.outcomes).filter(([o]) => o !== 'ok').map(([o, n]) => `${n} ${o}`).join(', ')})` : ''}` : '–');
const ms = (l) => `${f(l.p50ms, 0)} / ${f(l.p99ms, 0)}`;

/** Policy-server mode (bench/phase-policy.ts, issue 17): every target, then each front end
 *  alone against the same front end asking mailgate. CPU per login by process. */
function policyTables(p) {
  const rows = p.rows;
  const cpu = (r, part) => r?.cpuMsPerLogin?.[part];
  const perLogin = (o) => (o ? Object.entries(o).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ') : '–');
  const all = table(
    ['target', 'logins/s', 'p50 ms', 'p99 ms', 'Dovecot CPU ms/login', 'nginx', 'mailgate', 'total', 'total without Dovecot', 'policy requests/login', 'mailgate answer ms', 'loadgen CPU', 'failed'],
    rows.map((r) => [
      r.target, f(r.perSec), f(r.p50ms, 2), f(r.p99ms, 2), f(cpu(r, 'dovecot'), 3), f(cpu(r, 'nginx'), 3), f(cpu(r, 'mailgate'), 3), f(r.totalCpuMsPerLogin, 3),
      r.cpuMsPerLogin.nginx == null ? '–' : f(r.totalCpuMsPerLogin - cpu(r, 'dovecot'), 3), perLogin(r.policyRequestsPerLogin), f(r.policyAnswerMs, 2), `${f(r.loadgenCpuPct)}%`, String(r.failed),
    ]),
  );
  const by = (name) => rows.find((r) => r.target === name);
  const vs = (a, b, d = 3) => `${f(a, d)} → ${f(b, d)} (${f(ratio(b, a), 2)}×)`;
  const pairs = table(
    ['front end', 'logins/s alone → asking mailgate', 'CPU ms/login, every process', 'without Dovecot (nginx + mailgate)', "Dovecot's CPU ms/login", "mailgate's CPU ms/login (share)"],
    p.pairs.map((x) => {
      const a = by(x.alone);
      const b = by(x.asking);
      const noDovecot = (r) => (r ? r.totalCpuMsPerLogin - (cpu(r, 'dovecot') ?? 0) : null);
      return [
        x.front, vs(a?.perSec, b?.perSec, 0), vs(a?.totalCpuMsPerLogin, b?.totalCpuMsPerLogin), a?.cpuMsPerLogin.nginx == null ? '–' : vs(noDovecot(a), noDovecot(b)),
        vs(cpu(a, 'dovecot'), cpu(b, 'dovecot')), `${f(cpu(b, 'mailgate'), 3)} (${pctTxt(ratio(cpu(b, 'mailgate'), b?.totalCpuMsPerLogin))})`,
      ];
    }),
  );
  const MAIN = ['auth', 'imap-login', 'imap'];
  const dovecotBy = table(
    ["Dovecot's CPU ms/login by process", ...MAIN, 'the rest (master, log, anvil, stats, config)'],
    rows.filter((r) => r.dovecotCpuMsByProcess).map((r) => {
      const by = r.dovecotCpuMsByProcess;
      const rest = Object.entries(by).filter(([k]) => !MAIN.includes(k)).reduce((a, [, v]) => a + v, 0);
      return [r.target, ...MAIN.map((k) => f(by[k], 3)), f(rest, 3)];
    }),
  );
  return [all, pairs, dovecotBy].join('\n\n');
}

/** Address groups (bench/phase-groups.ts, issue 18): every target against no groups, then
 *  GeoIp.lookup's cost per lookup in process. */
function groupsTables(g) {
  const signed = (x, d) => (x == null ? '–' : `${x > 0 ? '+' : ''}${f(x, d)}`);
  const rows = table(
    ['target', 'clients', 'logins/s', 'vs no groups', 'session p50 / p99 ms', 'LOGIN answer p50 / p99 ms', 'Δ LOGIN p50 ms', 'mailgate CPU ms/login', 'Δ CPU ms', 'mailgate idle CPU ms/s', 'dnsmasq CPU ms/login', 'blocklist queries/login', 'query mean ms (≤1 / ≤5 ms)', 'in group', 'loadgen CPU', 'failed'],
    g.rows.map((r) => [
      r.target, r.what, f(r.perSec), r.vsBaseline ? f(r.vsBaseline.perSec, 2) : '–', `${f(r.sessionMs.p50, 1)} / ${f(r.sessionMs.p99, 1)}`, `${f(r.loginMs.p50, 1)} / ${f(r.loginMs.p99, 1)}`,
      signed(r.vsBaseline?.loginP50Ms, 1), f(r.cpuMsPerLogin, 3), signed(r.vsBaseline?.cpuMs, 3), f(r.idleCpuMsPerSec, 1), f(r.dnsCpuMsPerLogin, 3),
      r.dnsbl ? `${f(r.dnsbl.queriesPerLogin, 2)} (${Object.entries(r.dnsbl.byResultPerLogin).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ') || 'none'})` : '–',
      r.dnsbl?.meanMs != null ? `${f(r.dnsbl.meanMs, 2)} (${pctTxt(r.dnsbl.within['1ms'])} / ${pctTxt(r.dnsbl.within['5ms'])})` : '–',
      Object.entries(r.groupShare).map(([k, v]) => `${k} ${pctTxt(v)}`).join(', ') || '–', `${f(r.loadgenCpuPct)}%`, `${r.failed}${r.repeatedAddresses ? ` (${r.repeatedAddresses} sessions reused an address)` : ''}`,
    ]),
  );
  const spread = (k, d) => (r) => (r.runs?.length ? `${f(Math.min(...r.runs.map((x) => x[k])), d)}–${f(Math.max(...r.runs.map((x) => x[k])), d)}` : '–');
  const rounds = table(['target', 'logins/s, lowest–highest run', 'mailgate CPU ms/login, lowest–highest run'], g.rows.map((r) => [r.target, spread('perSec', 0)(r), spread('cpuMs', 3)(r)]));
  const x = g.geoip;
  const lookups = table(
    ['GeoIp.lookup (asn + country databases)', 'µs per lookup'],
    [
      [`miss, IPv4 in a mapped /24 (tree walk + record decode per database, cache insert)`, f(x.missV4Us, 2)],
      [`miss, IPv6 in a mapped /48`, f(x.missV6Us, 2)],
      [`miss, IPv4 in no network`, f(x.missUnmappedV4Us, 2)],
      [`hit (address cached)`, f(x.hitUs, 3)],
    ],
  );
  const p = g.dnsProbe;
  const probe = p ? `dnsmasq alone (before the rounds, ${p.queries} queries one at a time from the benchmark's process): listed p50 ${f(p.listed.p50, 2)} / p99 ${f(p.listed.p99, 2)} ms, not listed p50 ${f(p.clean.p50, 2)} / p99 ${f(p.clean.p99, 2)} ms.` : '';
  return [rows, rounds, probe, `${f(x.lookups)} lookups a pass, median of 3 passes; reading both databases: ${f(x.openMs, 1)} ms (${f(g.world.dbBytes.asn / 1048576, 1)} + ${f(g.world.dbBytes.country / 1048576, 1)} MiB, ${g.world.netsV4} IPv4 /24s and ${g.world.netsV6} IPv6 /48s each).`, lookups].join('\n\n');
}

/** The attack benchmark (bench/phase-attacks.ts, issue 14): one row per scenario. */
function attacksTable(a) {
  return table(
    ['scenario', 'simulated h', 'ordinary life ok', 'attack attempts', 'reached backend', 'accounts entered', 'owners from home', 'owners from a new network', 'colleagues (before / during / after)', 'legit p50 / p99 ms alone', 'during attack', 'p99 ratio', 'legit ok during'],
    a.rows.map((r) => [
      r.title, f(r.simulatedHours, 1), okOf(r.life.logins), r.attack.attempts,
      `${r.attack.reached} (${f(r.attack.reachedPct, 0)}%)${r.wrongPairs ? `; wrong pairs ${r.wrongPairs.reached}/${r.wrongPairs.attempts} (${f(r.wrongPairs.reachedPct, 0)}%)` : ''}${r.attack.logComplete ? '' : ' (log incomplete)'}`,
      r.attack.accountsEntered, okOf(r.owners.home), okOf(r.owners.newNetwork),
      r.colleagues ? `${r.colleagues.before.ok} / ${r.colleagues.during.ok} / ${r.colleagues.after.ok} of ${r.colleagues.during.of}` : '–',
      ms(r.latency.unloaded), ms(r.latency.underAttack), f(r.latency.p99Ratio, 2), `${r.latency.underAttack.ok}/${r.latency.underAttack.logins}`,
    ]),
  );
}

/** Every target of issue 14, judged on the attack benchmark's figures. */
export function attackTargets(a) {
  const out = [];
  const add = (target, met, detail) => out.push({ target, met, detail });
  const reachedCap = { 'one-shot': 10, spray: 25 };
  for (const r of a?.rows ?? []) {
    const o = r.owners;
    add(`owner logs in from home and from a new network (${r.title})`, o.home.ok === o.home.of && o.newNetwork.ok === o.newNetwork.of, `home ${okOf(o.home)}, new network ${okOf(o.newNetwork)}`);
    const cap = reachedCap[r.scenario];
    if (cap !== undefined) add(`≤ ${cap}% of attack attempts reach the backend (${r.title})`, r.attack.reachedPct !== null && r.attack.reachedPct <= cap, `${r.attack.reached}/${r.attack.attempts} (${f(r.attack.reachedPct, 1)}%)`);
    if (r.wrongPairs) add(`≤ 50% of wrong pairs reach the backend (${r.title})`, r.wrongPairs.reachedPct <= 50, `${r.wrongPairs.reached}/${r.wrongPairs.attempts} (${f(r.wrongPairs.reachedPct, 1)}%); ${r.attack.accountsEntered} accounts entered`);
    if (r.colleagues) {
      const worst = Math.min(r.colleagues.during.ok, r.colleagues.after.ok);
      const of = r.colleagues.during.of;
      add(`≥ ${of - 1} of ${of} colleagues keep logging in, most of the machine's guesses stopped (${r.title})`, worst >= of - 1 && r.attack.reachedPct !== null && r.attack.reachedPct < 50,
        `colleagues ${r.colleagues.during.ok}/${of} during, ${r.colleagues.after.ok}/${of} after` +
          (r.colleagues.during.okMs ? ` (login during: p50 ${f(r.colleagues.during.okMs.p50, 0)} ms, slowest ${f(r.colleagues.during.okMs.max, 0)} ms)` : '') +
          `; machine ${r.attack.reached}/${r.attack.attempts} guesses reached the backend (${f(r.attack.reachedPct, 0)}%)`);
    }
    const l = r.latency;
    add(`legitimate-login p99 ≤ 2× unloaded during the attack (${r.title})`, l.p99Ratio !== null && l.p99Ratio <= 2 && l.underAttack.ok === l.underAttack.logins,
      `${f(l.underAttack.p99ms, 0)} vs ${f(l.unloaded.p99ms, 0)} ms (${f(l.p99Ratio, 2)}×), ${l.underAttack.ok}/${l.underAttack.logins} ok`);
  }
  return out;
}

/** Issue 22's targets (performance round 2), each against the reference it names, measured
 *  in the same run: the bare Node relay and nginx for CPU per login, nginx for STARTTLS,
 *  direct and nginx for the splice, nginx for idle spliced TLS memory. */
export function roundTwoTargets(res) {
  const out = [];
  const add = (target, met, detail) => out.push({ target, met, detail });
  const L = res.logins ?? [];
  const by = (tls, c, t) => L.find((r) => r.tls === tls && r.concurrency === c && r.target === t);
  for (const r of L.filter((x) => x.target === 'mailgate-memory')) {
    const n = by(r.tls, r.concurrency, 'nginx');
    const rn = ratio(r.cpuMsPerLogin, n?.cpuMsPerLogin);
    if (r.tls === 'none') {
      const fl = by(r.tls, r.concurrency, 'node-floor');
      const rf = ratio(r.cpuMsPerLogin, fl?.cpuMsPerLogin);
      add(`CPU per plaintext login ≤ 1.3× the bare Node relay (${r.concurrency} clients)`, rf !== null && rf <= 1.3, `${f(r.cpuMsPerLogin, 3)} vs ${f(fl?.cpuMsPerLogin, 3)} ms (${f(rf, 2)}×)`);
      add(`CPU per plaintext login ≤ 1.5× nginx (${r.concurrency} clients)`, rn !== null && rn <= 1.5, `${f(r.cpuMsPerLogin, 3)} vs ${f(n?.cpuMsPerLogin, 3)} ms (${f(rn, 2)}×)`);
    } else {
      const fl = by(r.tls, r.concurrency, 'node-floor');
      const floorTxt = fl ? `; the bare Node relay ${f(fl.cpuMsPerLogin, 3)} ms (${f(ratio(fl.cpuMsPerLogin, n?.cpuMsPerLogin), 2)}× nginx)` : '';
      add(`CPU per STARTTLS login ≤ 1.3× nginx (${r.concurrency} clients, full handshakes)`, rn !== null && rn <= 1.3, `${f(r.cpuMsPerLogin, 3)} vs ${f(n?.cpuMsPerLogin, 3)} ms (${f(rn, 2)}×)${floorTxt}`);
    }
  }
  const T = res.transfer ?? [];
  for (const r of T.filter((x) => x.target === 'mailgate-memory')) {
    const d = T.find((x) => x.proto === r.proto && x.target === 'direct');
    const n = T.find((x) => x.proto === r.proto && x.target === 'nginx');
    const rd = ratio(r.medianMBps, d?.medianMBps);
    const rn = ratio(r.medianMBps, n?.medianMBps);
    add(`splice ≥ 85% of direct and ≥ nginx (${r.proto === 'imap' ? 'IMAP FETCH' : 'POP3 RETR'} 50 MiB)`, rd !== null && rd >= 0.85 && rn !== null && rn >= 1,
      `${pctTxt(rd)} of direct, ${pctTxt(rn)} of nginx; ${f(r.cpuMsPerMB, 2)} vs nginx ${f(n?.cpuMsPerMB, 2)} ms CPU/MiB`);
  }
  const M = res.memory ?? [];
  const same = (r, proxy) => M.find((x) => x.proxy === proxy && x.kind === r.kind && x.requested === r.requested);
  // The bare Node relay's figure, where the run measured it: Node's own share.
  const floorKiB = (r) => (same(r, 'node-floor') ? `; the bare Node relay ${f(same(r, 'node-floor').perConnKiB, 1)} KiB` : '');
  for (const r of M.filter((x) => x.proxy === 'mailgate' && x.kind === 'preauth-plain')) {
    const m = marginalKiB(M, r);
    add(`≤ 3 KiB per idle pre-auth plaintext connection (${r.held} connections)`, r.perConnKiB !== null && r.perConnKiB <= 3, `${f(r.perConnKiB, 1)} KiB${m !== null ? ` (marginal ${f(m, 1)} KiB)` : ''}${floorKiB(r)}`);
  }
  for (const r of M.filter((x) => x.proxy === 'mailgate' && x.kind === 'spliced-tls')) {
    const n = same(r, 'nginx');
    const rn = ratio(r.perConnKiB, n?.perConnKiB);
    add(`idle spliced TLS ≤ 1.25× nginx (${r.held} connections)`, rn !== null && rn <= 1.25, `${f(r.perConnKiB, 1)} vs ${f(n?.perConnKiB, 1)} KiB (${f(rn, 2)}×)${floorKiB(r)}`);
  }
  return out;
}

/** Every target of issue 8, with the figures it was judged on. */
export function checkTargets(res) {
  const out = [];
  const add = (name, ok, detail) => out.push({ target: name, met: ok, detail });
  const L = res.logins ?? [];
  const by = (tls, c, t) => L.find((r) => r.tls === tls && r.concurrency === c && r.target === t);
  for (const r of L.filter((x) => MG.includes(x.target))) {
    const d = by(r.tls, r.concurrency, 'direct');
    const n = by(r.tls, r.concurrency, 'nginx');
    const rd = ratio(r.perSec, d?.perSec);
    const rn = ratio(r.perSec, n?.perSec);
    add(`logins/s ≥ 95% of direct and ≥ nginx (${r.target}, ${tlsName(r.tls)}, ${r.concurrency} clients)`, rd >= 0.95 && rn >= 1, `${pctTxt(rd)} of direct, ${pctTxt(rn)} of nginx`);
    const rc = ratio(r.cpuMsPerLogin, n?.cpuMsPerLogin);
    add(`CPU per login ≤ nginx (${r.target}, ${tlsName(r.tls)}, ${r.concurrency} clients)`, rc !== null && rc <= 1, `${f(r.cpuMsPerLogin, 3)} vs ${f(n?.cpuMsPerLogin, 3)} ms (${pctTxt(rc)})`);
  }
  const T = res.transfer ?? [];
  for (const r of T.filter((x) => MG.includes(x.target))) {
    const d = T.find((x) => x.proto === r.proto && x.target === 'direct');
    const rd = ratio(r.medianMBps, d?.medianMBps);
    add(`spliced throughput ≥ 90% of direct (${r.target}, ${r.proto === 'imap' ? 'IMAP FETCH' : 'POP3 RETR'})`, rd >= 0.9, `${f(r.medianMBps)} vs ${f(d?.medianMBps)} MiB/s (${pctTxt(rd)})`);
  }
  for (const r of (res.memory ?? []).filter((x) => x.proxy === 'mailgate')) {
    const limit = r.kind === 'preauth-plain' ? 10 : 40;
    const m = marginalKiB(res.memory, r);
    add(`≤ ${limit} KiB per idle ${r.kind === 'preauth-plain' ? 'plaintext' : 'TLS'} connection (${r.kind}, ${r.held} connections)`, r.perConnKiB !== null && r.perConnKiB <= limit, `${f(r.perConnKiB, 1)} KiB${m !== null ? ` (marginal ${f(m, 1)} KiB)` : ''}`);
  }
  if (res.redisTrips) {
    // One hit and one settle script per subject, each phase's scripts sent together (results
    // from before the sharded layout: one subject, scripts = round trips).
    for (const [k, v] of Object.entries(res.redisTrips)) add(`≤ 2 Redis round trips per login (${k === 'successfulLogin' ? 'successful' : 'failed'} login): ≤ 2 scripts per subject`, v.perAttempt <= 2 * (v.subjects ?? 1), `${f(v.perAttempt, 2)} scripts for ${v.subjects ?? 1} subject(s) (${Object.entries(v.byCommand).map(([c, n]) => `${c} ${n}`).join(', ')} for ${v.attempts} logins)`);
  }
  for (const r of (res.flood ?? []).filter((x) => MG.includes(x.target))) {
    const all = r.underFlood.ok === r.underFlood.attempts;
    add(`under the flood every legitimate login succeeds, p99 ≤ 2× unloaded (${r.target}, attack from ${r.attackSources} addresses)`, all && r.p99Ratio <= 2, `${r.underFlood.ok}/${r.underFlood.attempts} ok, p99 ${f(r.underFlood.p99ms, 1)} vs ${f(r.unloaded.p99ms, 1)} ms (${f(r.p99Ratio, 2)}×)`);
  }
  for (const r of (res.attemptCosts ?? []).filter((x) => x.kind !== 'served' && MG.includes(x.target))) {
    const served = res.attemptCosts.find((x) => x.target === r.target && x.kind === 'served')?.cpuMsPerAttempt;
    const ratio = served && r.cpuMsPerAttempt !== null ? r.cpuMsPerAttempt / served : null;
    const C = res.attemptCosts;
    const bare = C.find((x) => x.target === 'node-floor-refuse')?.cpuMsPerAttempt;
    const bareServed = C.find((x) => x.target === 'node-floor' && x.kind === 'served')?.cpuMsPerAttempt;
    const floorTxt = bare && bareServed ? `; bare Node: ${f(bare, 3)} ms to refuse, ${f(bareServed, 3)} to serve (${f((bare / bareServed) * 100)}%)` : '';
    add(`an attempt ${r.kind.replace(/-/g, ' ')} costs ≤ 1/10 of a served login (${r.target})`, ratio !== null && ratio <= 0.1, `${f(r.cpuMsPerAttempt, 3)} vs ${f(served, 3)} ms CPU (${f(ratio === null ? null : ratio * 100)}%)${floorTxt}`);
  }
  for (const r of (res.submission ?? []).filter((x) => x.target === 'mailgate-tracked')) {
    const s = res.submission.find((x) => x.load === r.load && x.target === 'mailgate-splice');
    const ratio = s?.medianMsgsPerSec ? r.medianMsgsPerSec / s.medianMsgsPerSec : null;
    add(`submission (${r.load}) with the sending tracker ≥ 90% of the plain splice`, ratio !== null && ratio >= 0.9, `${f(ratio == null ? null : ratio * 100)}% (${f(r.medianMsgsPerSec, 1)} vs ${f(s?.medianMsgsPerSec, 1)} msg/s)`);
  }
  const most = Math.max(0, ...(res.noread ?? []).map((r) => r.flooders));
  for (const r of (res.noread ?? []).filter((x) => MG.includes(x.target) && x.flooders === most && most > 0)) {
    add(`with ${most} no-read flooders every legitimate login succeeds, p99 ≤ 2× alone (${r.target})`, r.probe.ok === r.probe.attempts && r.p99Ratio !== null && r.p99Ratio <= 2, `${r.probe.ok}/${r.probe.attempts} ok, p99 ${f(r.probe.p99ms, 1)} ms (${f(r.p99Ratio, 2)}× alone)`);
  }
  return out;
}

/** Submission through the sending tracker (bench/phase-submission.ts, issue 21): each load,
 *  every target, and the tracker's throughput against the plain splice (target: ≥ 90%). */
function submissionTable(rows) {
  const splice = (load) => rows.find((r) => r.load === load && r.target === 'mailgate-splice');
  return table(
    ['load', 'target', 'msg/s', 'MiB/s', 'vs splice', 'mailgate CPU ms/msg', 'mailgate CPU ms/MiB'],
    rows.map((r) => {
      const s = splice(r.load);
      const ratio = s?.medianMsgsPerSec ? r.medianMsgsPerSec / s.medianMsgsPerSec : null;
      return [r.load, r.target, f(r.medianMsgsPerSec, 1), f(r.medianMBps, 2), r.target === 'direct' ? '–' : `${f(ratio == null ? null : ratio * 100)}%`, f(r.cpuMsPerMessage, 3), f(r.cpuMsPerMB, 2)];
    }),
  );
}

export function render(res) {
  const parts = [];
  const m = res.machine;
  if (m) parts.push(`Run ${res.startedAt} (${res.mode}, ${f(res.seconds)} s) on ${m.cpus}× ${m.cpuModel}, ${f(m.memMiB / 1024, 1)} GiB; node ${m.node}, ${m.nginx}, dovecot ${m.dovecot}, redis ${m.redis}; mailgate ${m.commit ?? '?'}${m.srcFilesChanged ? ` + ${m.srcFilesChanged} changed files in src/` : ''}; load average ${m.loadStart} at start, ${m.loadEnd ?? '–'} at end.`);
  if (res.logins) parts.push('### IMAP LOGIN+LOGOUT', loginsTable(res.logins));
  if (res.logins?.some((r) => /^mailgate-\d+-workers$/.test(r.target))) {
    parts.push(
      '### Workers: one process vs worker mode (memory store)',
      `On this ${m?.cpus ?? '?'}-core machine Dovecot, the load generator and mailgate share the cores: logins/s cannot grow with workers here. The figure that matters is CPU per login staying flat (what the primary and the IPC add), so that more cores give more logins/s until Dovecot or Redis saturates.`,
      workersTable(res.logins),
    );
  }
  if (res.transfer) parts.push('### Spliced throughput (plaintext)', transferTable(res.transfer));
  if (res.memory) parts.push('### Memory per idle connection', memoryTable(res.memory));
  if (res.limiter) parts.push('### Limiter decisions in process (check + record)', limiterTable(res.limiter));
  if (res.limiterIpc) parts.push('### Limiter with the memory store in the primary, over IPC (worker mode; check + record = 2 calls)', limiterIpcTable(res.limiterIpc));
  if (res.flood) parts.push(`### Brute-force flood (${res.settings?.flood?.attackRate ?? '?'} failing logins/s; legitimate logins ${res.settings?.flood?.legitRate ?? '?'}/s from other addresses)`, floodTable(res.flood));
  if (res.attemptCosts) parts.push(`### What an attempt costs the proxy (${res.settings?.flood?.costRate ?? '?'} attempts/s, plaintext IMAP)`, costTable(res.attemptCosts));
  if (res.noread) parts.push(`### No-read flood (\`a CAPABILITY\` pipelined, never read; legitimate IMAP logins ${res.settings?.noread?.rate ?? '?'}/s, connect to LOGIN answer)`, noreadTable(res.noread));
  if (res.policy) parts.push(`### Policy server (plaintext IMAP LOGIN+LOGOUT, ${res.policy.settings.concurrency} clients; Dovecot and nginx alone vs asking mailgate)`, policyTables(res.policy));
  if (res.groups) parts.push(`### Address groups (plaintext IMAP LOGIN+LOGOUT through a PROXY listener, ${res.groups.settings.concurrency} clients; blocklist timeout ${res.groups.timeoutMs} ms)`, groupsTables(res.groups));
  if (res.submission) parts.push('### Submission (messages through the submission listener to Dovecot relaying to a sink; median of the rounds)', submissionTable(res.submission));
  if (res.redisTrips) {
    const t = res.redisTrips;
    parts.push('### Redis scripts per login (MONITOR, one Redis server: one hit and one settle script, the settle writing the history row; two round trips)', table(['login', 'attempts', 'subjects', 'scripts', 'per login', 'commands'], Object.entries(t).map(([k, v]) => [k === 'successfulLogin' ? 'successful' : 'wrong password', v.attempts, v.subjects ?? 1, v.roundTrips, f(v.perAttempt, 2), Object.entries(v.byCommand).map(([c, n]) => `${c} ${n}`).join(', ')])));
  }
  if (res.profile) parts.push('### Profiles (mailgate, memory store, node --cpu-prof; % of busy samples, self time)', profileText(res.profile));
  if (res.attacks) {
    parts.push(`### Attacks (${res.attacks.config}; Dovecot: ${res.attacks.dovecot})`, attacksTable(res.attacks));
    parts.push('Attack targets (issue 14)', table(['target', 'met', 'measured'], attackTargets(res.attacks).map((t) => [t.target, t.met ? 'met' : '**not met**', t.detail])));
  }
  const round2 = roundTwoTargets(res);
  if (round2.length) parts.push('### Targets of performance round 2 (issue 22; the flood, refusal and submission targets are in the table below)', table(['target', 'met', 'measured'], round2.map((t) => [t.target, t.met ? 'yes' : '**no**', t.detail])));
  const targets = checkTargets(res);
  if (targets.length) parts.push('### Targets', table(['target', 'met', 'measured'], targets.map((t) => [t.target, t.met ? 'yes' : '**no**', t.detail])));
  return parts.join('\n\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/report.mjs bench/results/FILE.json\n');
    process.exit(2);
  }
  console.log(render(JSON.parse(readFileSync(file, 'utf8'))));
}
