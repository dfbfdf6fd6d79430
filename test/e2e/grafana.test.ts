// deploy/grafana/mailgate.json: valid JSON whose every PromQL expression (panels, rows'
// panels, template variables) names only metrics a running mailgate exports, read from the
// /metrics of the compiled CLI in worker mode (the primary's worker gauges and every worker's
// metrics, summed) after a login through a real Dovecot.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { exportedNames, promqlMetricNames } from '../helpers/promql-names.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const TOKEN = 'grafana-metrics-token-0123456789';
const DASHBOARD = 'deploy/grafana/mailgate.json';

interface Target {
  expr?: string;
}
interface Panel {
  title?: string;
  type: string;
  targets?: Target[];
  panels?: Panel[];
  datasource?: unknown;
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

/** Every PromQL expression of the dashboard, with where it is. */
function expressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    // label_values(metric, label): the metric is read.
    const lv = q && /^label_values\((?:([^,]+),)?\s*\w+\)$/.exec(q);
    if (lv?.[1]) out.push({ where: `variable ${v.name}`, expr: lv[1].trim() });
    else if (q) out.push({ where: `variable ${v.name}`, expr: q.replace(/^query_result\((.*)\)$/, '$1') });
  }
  return out;
}

/** The names the dashboard reads that `exported` lacks, with where. */
function unknownNames(d: Dashboard, exported: Set<string>): string[] {
  return expressions(d).flatMap(({ where, expr }) => promqlMetricNames(expr).filter((n) => !exported.has(n)).map((n) => `${where}: ${n}`));
}

const rig = dovecotForFile({ users: [{ user: 'alice', pass: 'alice-pass' }] });
let built: BuiltCli;
let proxy: RunningProxy;
let exported: Set<string>;

beforeAll(async () => {
  built = buildCli();
  const config = [
    'workers: 2',
    'listeners:',
    '  - {name: imap, protocol: imap, listen: "127.0.0.1:0", tls: none, backend: imap}',
    `backends: {imap: {host: 127.0.0.1, port: ${rig.dovecot.ports.imap}}}`,
    'admin: {listen: "127.0.0.1:0"}',
    'timeouts: {shutdown: 1s}',
  ].join('\n');
  proxy = await spawnProxy(built.cli, built.writeConfig('grafana.yaml', config), { MAILGATE_ADMIN_TOKEN: TOKEN });
}, 180_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

  it('reads only metrics a running mailgate exports', async () => {
    const c = await RawClient.connect(proxy.ports.imap!);
    await c.waitFor(/\r\n/);
    c.write('t LOGIN alice alice-pass\r\n');
    await c.waitFor(/^t OK/m);
    c.close();
    const text = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(text).toMatch(/^mailgate_login_attempts_total\{[^}]*outcome="ok"[^}]*\} 1$/m);
    exported = exportedNames(text);
    expect(exported.has('mailgate_workers')).toBe(true);
    expect(unknownNames(dashboard, exported)).toEqual([]);
  });

  it('covers what operators watch: every panel has a query, and the issue list is there', () => {
    const exprs = expressions(dashboard);
    const used = new Set(exprs.flatMap((e) => promqlMetricNames(e.expr)));
    for (const name of [
      'mailgate_login_attempts_total',
      'mailgate_refusals_total',
      'mailgate_attack_mode',
      'mailgate_attack_mode_forced',
      'mailgate_login_failures_per_minute',
      'mailgate_login_failures_baseline_per_minute',
      'mailgate_connections_refused_total',
      'mailgate_backend_up',
      'mailgate_backend_login_seconds_bucket',
      'mailgate_store_up',
      'mailgate_store_fallbacks_total',
      'mailgate_tls_handshakes_total',
      'mailgate_connections',
      'mailgate_policy_requests_total',
      'mailgate_group_decisions_total',
      'mailgate_dnsbl_queries_total',
    ])
      expect(used, name).toContain(name);
    const leaves = (ps: Panel[]): Panel[] => ps.flatMap((p) => (p.type === 'row' ? leaves(p.panels ?? []) : [p]));
    for (const p of leaves(dashboard.panels)) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      // The templated datasource, so an import or a provisioned file picks the site's Prometheus.
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
  });

  it('finds a misspelled metric, and a misspelled function', () => {
    const broken = JSON.parse(JSON.stringify(dashboard).replace('mailgate_store_up{', 'mailgate_store_upp{')) as Dashboard;
    expect(unknownNames(broken, exported)).toEqual(['panel "Store up": mailgate_store_upp']);
    const typo = JSON.parse(JSON.stringify(dashboard).replace('rate(mailgate_tls_handshakes_total', 'rat(mailgate_tls_handshakes_total')) as Dashboard;
    expect(() => unknownNames(typo, exported)).toThrow(/"rat\(" .*not a PromQL function/);
  });
});

describe('promqlMetricNames', () => {
  it.each([
    ['sum by (outcome) (rate(a_total{instance=~"$instance", outcome="fail"}[$__rate_interval]))', ['a_total']],
    ['histogram_quantile(0.95, sum by (le, zone) (rate(b_seconds_bucket{x="y"}[5m])))', ['b_seconds_bucket']],
    ['sum(rate(a[5m])) / ignoring(x) group_left(y) sum(b offset 1h) > bool 0.5', ['a', 'b']],
    ['label_replace(up, "dst", "$1", "src", "(.*)") or vector(1e3) unless on(job) c:recorded:rate5m', ['up', 'c:recorded:rate5m']],
    ['max without (instance) (d) * 60 and e @ 1609746000', ['d', 'e']],
  ])('%s', (expr, names) => {
    expect(promqlMetricNames(expr).sort()).toEqual([...names].sort());
  });
});
