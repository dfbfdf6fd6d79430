// Summarises a V8 .cpuprofile (node --cpu-prof): top frames by self time, self time by
// module (mailgate's dist/ files, node_modules packages, node internals, GC), and inclusive
// time of mailgate's own functions. `node bench/profile-top.mjs FILE [N]` prints it;
// `node bench/profile-top.mjs FILE --callers NAME` shows who calls a frame (e.g. writeBuffer).
import { readFileSync } from 'node:fs';

function where(url) {
  if (!url) return '';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist) return `dist/${dist[1]}`;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
}

const frameKey = (cf) => `${cf.functionName || '(anonymous)'} ${where(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
const moduleKey = (cf) => {
  if (!cf.url) return cf.functionName || '(native)';
  const w = where(cf.url);
  return w.startsWith('node:') ? 'node internals' : w;
};

export function summarise(profile, n = 15) {
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const hits = new Map(); // node id -> samples
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const idle = profile.nodes.filter((x) => x.callFrame.functionName === '(idle)').reduce((a, x) => a + (hits.get(x.id) ?? 0), 0);
  const busy = profile.samples.length - idle;
  const pct = (h) => +((h / busy) * 100).toFixed(1);
  const self = new Map();
  const modules = new Map();
  for (const x of profile.nodes) {
    const h = hits.get(x.id) ?? 0;
    if (!h || x.callFrame.functionName === '(idle)') continue;
    self.set(frameKey(x.callFrame), (self.get(frameKey(x.callFrame)) ?? 0) + h);
    modules.set(moduleKey(x.callFrame), (modules.get(moduleKey(x.callFrame)) ?? 0) + h);
  }
  // Inclusive time of mailgate's own (dist/) functions, each counted once per stack.
  const inclusive = new Map();
  const parent = new Map();
  for (const x of profile.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  for (const [id, h] of hits) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame;
      if (cf.functionName === '(idle)') break;
      if (!where(cf.url).startsWith('dist/')) continue;
      const k = frameKey(cf);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + h);
    }
  }
  // Stretches of consecutive busy samples: how long the event loop went without idling
  // (callbacks queued behind each other; a login arriving then waits that long).
  const idleIds = new Set(profile.nodes.filter((x) => x.callFrame.functionName === '(idle)').map((x) => x.id));
  const stretches = [];
  let t = 0;
  let from = -1;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const isBusy = !idleIds.has(profile.samples[i]);
    if (isBusy && from < 0) from = t;
    if (!isBusy && from >= 0) {
      stretches.push((t - from) / 1000);
      from = -1;
    }
  }
  stretches.sort((a, b) => b - a);
  const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, h]) => ({ frame: k, pct: pct(h) }));
  return {
    seconds: +((profile.endTime - profile.startTime) / 1e6).toFixed(1),
    busyPct: +((busy / profile.samples.length) * 100).toFixed(1),
    longestBusyMs: stretches.slice(0, 5).map((x) => +x.toFixed(1)),
    busyOver20ms: stretches.filter((x) => x > 20).length,
    selfTop: top(self),
    byModule: top(modules),
    mailgateInclusive: top(inclusive),
  };
}

/** Self time of frames named `name`, by the stack above them (nearest `depth` JS frames). */
export function callers(profile, name, depth = 4) {
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const parent = new Map();
  for (const x of profile.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const hits = new Map();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const busy = profile.samples.length - profile.nodes.filter((x) => x.callFrame.functionName === '(idle)').reduce((a, x) => a + (hits.get(x.id) ?? 0), 0);
  const stacks = new Map();
  for (const x of profile.nodes) {
    if (x.callFrame.functionName !== name || !hits.get(x.id)) continue;
    const chain = [];
    for (let cur = parent.get(x.id); cur !== undefined && chain.length < depth; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame;
      if (cf.functionName === '(root)') break;
      chain.push(frameKey(cf));
    }
    const k = chain.join(' < ');
    stacks.set(k, (stacks.get(k) ?? 0) + hits.get(x.id));
  }
  return [...stacks].sort((a, b) => b[1] - a[1]).map(([k, h]) => ({ stack: k, pct: +((h / busy) * 100).toFixed(1) }));
}

export function printSummary(s) {
  const lines = [`profile: ${s.seconds} s, ${s.busyPct}% busy; percentages are of busy samples`];
  lines.push(`event loop busy without a break: longest ${s.longestBusyMs.join(', ')} ms; ${s.busyOver20ms} stretches over 20 ms`);
  lines.push('self time, top frames:', ...s.selfTop.map((x) => `  ${String(x.pct).padStart(5)}%  ${x.frame}`));
  lines.push('self time by module:', ...s.byModule.map((x) => `  ${String(x.pct).padStart(5)}%  ${x.frame}`));
  lines.push('inclusive time, mailgate functions:', ...s.mailgateInclusive.map((x) => `  ${String(x.pct).padStart(5)}%  ${x.frame}`));
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/profile-top.mjs FILE.cpuprofile [N]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  if (process.argv[3] === '--callers') {
    for (const c of callers(profile, process.argv[4] ?? 'writeBuffer', Number(process.argv[5] ?? 4)).slice(0, 20)) console.log(`${String(c.pct).padStart(5)}%  ${c.stack}`);
  } else {
    console.log(printSummary(summarise(profile, Number(process.argv[3] ?? 15))));
  }
}
