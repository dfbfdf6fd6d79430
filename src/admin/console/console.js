// mailgate console: polls the admin API with the bearer token kept in sessionStorage (never a
// URL, a cookie or a log) and renders with textContent only. No framework, no build step.
'use strict';

const TOKEN_KEY = 'mailgate.token';
const HISTORY_KEY = 'mailgate.activity';
const REFRESH_MS = 5000;
const OUTCOMES = ['ok', 'fail', 'limited', 'backend-error', 'invalid', 'locked'];
const MINUTES = 60;

const $ = (id) => document.getElementById(id);
let timer = null;

/** An element with text (never parsed as HTML) and optional class. */
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function say(text, isError) {
  const m = $('message');
  m.textContent = text;
  m.classList.toggle('error', !!isError);
}

class Unauthorized extends Error {}

/** One API call with the token; problem+json details become the error's message. */
async function api(path, method = 'GET', token = sessionStorage.getItem(TOKEN_KEY)) {
  const r = await fetch(path, { method, headers: { authorization: `Bearer ${token}` }, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
  if (r.status === 401) throw new Unauthorized('the token was refused');
  const type = r.headers.get('content-type') || '';
  const body = type.includes('json') ? await r.json() : await r.text();
  if (!r.ok) {
    const err = new Error((body && body.detail) || `${method} ${path}: HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

// ---- login -----------------------------------------------------------------------------

function showLogin(error) {
  clearInterval(timer);
  timer = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('console').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = error || '';
  $('status').textContent = '';
  $('token').value = '';
  $('token').focus();
}

function showConsole() {
  $('login').hidden = true;
  $('console').hidden = false;
  $('logout').hidden = false;
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = $('token').value.trim();
  try {
    await api('/api/v1/blocks', 'GET', token);
  } catch (e) {
    showLogin(e instanceof Unauthorized ? 'Wrong token: the admin endpoint refused it.' : `Cannot reach the admin endpoint: ${e.message}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  showConsole();
});

$('logout').addEventListener('click', () => showLogin(''));

// ---- refresh ---------------------------------------------------------------------------

async function refresh() {
  const parts = [refreshActivity, refreshAttack, refreshBlocks, refreshHealth, refreshSessions];
  const results = await Promise.allSettled(parts.map((f) => f()));
  const denied = results.find((r) => r.status === 'rejected' && r.reason instanceof Unauthorized);
  if (denied) return showLogin('The token is no longer accepted: log in again.');
  const failed = results.find((r) => r.status === 'rejected');
  $('status').textContent = failed ? `Updated ${new Date().toLocaleTimeString()}, with errors: ${failed.reason.message}` : `Updated ${new Date().toLocaleTimeString()}`;
}

// ---- logins by outcome: /metrics differenced per minute in the page ---------------------

/** Sums mailgate_login_attempts_total over protocols, by outcome. */
function loginTotals(text) {
  const totals = {};
  const re = /^mailgate_login_attempts_total\{([^}]*)\} ([0-9.e+]+)$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const o = /outcome="([^"]*)"/.exec(m[1]);
    if (o) totals[o[1]] = (totals[o[1]] || 0) + Number(m[2]);
  }
  return totals;
}

function loadHistory() {
  try {
    return JSON.parse(sessionStorage.getItem(HISTORY_KEY)) || { last: null, minutes: {} };
  } catch {
    return { last: null, minutes: {} };
  }
}

async function refreshActivity() {
  const totals = loginTotals(await api('/metrics'));
  const h = loadHistory();
  const minute = Math.floor(Date.now() / 60000);
  const bucket = (h.minutes[minute] = h.minutes[minute] || {});
  if (h.last) {
    for (const [o, n] of Object.entries(totals)) {
      // A counter that went down means mailgate restarted: everything since counts.
      const d = n >= (h.last[o] || 0) ? n - (h.last[o] || 0) : n;
      if (d > 0) bucket[o] = (bucket[o] || 0) + d;
    }
  }
  h.last = totals;
  for (const k of Object.keys(h.minutes)) if (Number(k) <= minute - MINUTES) delete h.minutes[k];
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(h));
  drawChart(h.minutes, minute);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function drawChart(minutes, now) {
  const chart = $('chart');
  while (chart.lastChild && chart.lastChild.tagName !== 'desc') chart.removeChild(chart.lastChild);
  const W = 600, H = 160, left = 30, bottom = 18, top = 6;
  const bw = (W - left) / MINUTES;
  let max = 1;
  for (const b of Object.values(minutes)) max = Math.max(max, OUTCOMES.reduce((s, o) => s + (b[o] || 0), 0));
  const scale = (H - bottom - top) / max;
  const sums = {};
  for (let i = 0; i < MINUTES; i++) {
    const b = minutes[now - MINUTES + 1 + i] || {};
    let y = H - bottom;
    for (const o of OUTCOMES) {
      const n = b[o] || 0;
      sums[o] = (sums[o] || 0) + n;
      if (!n) continue;
      const h = n * scale;
      y -= h;
      const r = svg('rect', { x: left + i * bw + 0.5, y, width: Math.max(1, bw - 1), height: h, class: `o-${o}` });
      r.appendChild(svg('title', {})).textContent = `${n} ${o}`;
      chart.appendChild(r);
    }
  }
  chart.appendChild(svg('line', { x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: 'axis' }));
  chart.appendChild(svg('line', { x1: left, y1: top, x2: left, y2: H - bottom, class: 'axis' }));
  chart.appendChild(svg('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' })).textContent = String(max);
  chart.appendChild(svg('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' })).textContent = '0';
  chart.appendChild(svg('text', { x: left, y: H - 4 })).textContent = '-60 min';
  chart.appendChild(svg('text', { x: W, y: H - 4, 'text-anchor': 'end' })).textContent = 'now';
  const legend = $('legend');
  legend.replaceChildren(...OUTCOMES.map((o) => el('li', `${o}: ${sums[o] || 0}`, `o-${o}`)));
}

// ---- attack mode ------------------------------------------------------------------------

async function refreshAttack() {
  let v;
  try {
    v = await api('/api/v1/attack-mode');
  } catch (e) {
    if (e.status !== 404) throw e;
    $('attack-state').textContent = 'Not available in this process.';
    return;
  }
  const state = v.active ? 'ON' : 'off';
  const how = v.forced ? `forced ${v.forced}` : 'automatic';
  $('attack-state').textContent = `${state} (${how}${v.since ? `, since ${new Date(v.since).toLocaleTimeString()}` : ''}): ${v.failuresPerMin} failures/min, baseline ${v.baselinePerMin}, threshold ${v.thresholdPerMin}${v.enabled ? '' : '; detection disabled'}`;
  for (const b of document.querySelectorAll('#attack button[data-mode]')) {
    b.setAttribute('aria-pressed', String((v.forced || 'auto') === b.dataset.mode));
  }
}

for (const b of document.querySelectorAll('#attack button[data-mode]')) {
  b.addEventListener('click', () => act(`/api/v1/attack-mode?mode=${encodeURIComponent(b.dataset.mode)}`, 'POST', `Attack mode set to ${b.dataset.mode}.`));
}

// ---- blocks and the top lists -----------------------------------------------------------

function remaining(iso) {
  const s = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${s}s`;
}

function subjectOf(b) {
  const parts = [];
  if (b.ip) parts.push(b.ip);
  if (b.userHash) parts.push(`user #${b.userHash.slice(0, 12)}`);
  return parts.join(' + ') || '?';
}

/** IPv4 /24, IPv6 /48: the networks an operator blocks next. */
function prefixOf(ip) {
  if (ip.includes('/')) return ip;
  if (ip.includes(':')) return `${ip.split(':').slice(0, 3).join(':')}::/48`;
  return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
}

function topOf(map, n = 5) {
  return [...map.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
}

const known = new Map(); // ip -> "AS64500 Example, DE" (or '' when the groups know nothing)

async function describeSource(ip) {
  if (known.has(ip) || ip.includes('/')) return known.get(ip) || '';
  known.set(ip, '');
  try {
    const c = (await api(`/api/v1/limits?ip=${encodeURIComponent(ip)}`)).client;
    const asn = c && c.asn !== undefined ? `AS${c.asn}` : '';
    const country = c && c.country ? String(c.country) : '';
    known.set(ip, [asn, country].filter(Boolean).join(', '));
  } catch {
    /* optional detail */
  }
  return known.get(ip);
}

function fillTop(id, entries, unit, detail) {
  const list = $(id);
  if (!entries.length) return list.replaceChildren(el('li', 'none', 'note none'));
  list.replaceChildren(
    ...entries.map(([k, n]) => {
      const li = el('li');
      li.append(el('span', k, 'mono'), ` ${n} ${unit}`);
      const d = detail && detail(k);
      if (d) li.append(el('span', ` (${d})`, 'note'));
      return li;
    }),
  );
}

async function refreshBlocks() {
  const { blocks } = await api('/api/v1/blocks');
  blocks.sort((a, b) => Date.parse(b.since) - Date.parse(a.since));
  const rows = blocks.map((b) => {
    const tr = el('tr');
    tr.append(el('td', subjectOf(b), 'mono'), el('td', b.rule || '?'));
    tr.append(el('td', b.count > 0 ? `${b.count} counted (key ${b.key}) since ${new Date(b.since).toLocaleTimeString()}` : 'blocked by hand'));
    tr.append(el('td', remaining(b.expires)));
    const td = el('td');
    if (b.ip) {
      const btn = el('button', 'Unblock');
      btn.type = 'button';
      btn.setAttribute('aria-label', `Unblock ${b.ip}`);
      btn.addEventListener('click', () => act(`/api/v1/blocks/${encodeURIComponent(b.ip)}`, 'DELETE', `Unblocked ${b.ip}.`));
      td.append(btn);
    } else {
      td.append(el('span', 'reset the account by name', 'note'));
    }
    tr.append(td);
    return tr;
  });
  $('block-rows').replaceChildren(...rows);
  $('blocks-empty').hidden = blocks.length > 0;

  const accounts = new Map(), sources = new Map(), prefixes = new Map();
  for (const b of blocks) {
    const n = Math.max(1, b.count);
    if (b.userHash) accounts.set(`#${b.userHash.slice(0, 12)}`, (accounts.get(`#${b.userHash.slice(0, 12)}`) || 0) + n);
    if (b.ip) {
      sources.set(b.ip, (sources.get(b.ip) || 0) + n);
      prefixes.set(prefixOf(b.ip), (prefixes.get(prefixOf(b.ip)) || 0) + n);
    }
  }
  const topSources = topOf(sources);
  await Promise.all(topSources.map(([ip]) => describeSource(ip)));
  fillTop('top-accounts', topOf(accounts), 'counted');
  fillTop('top-sources', topSources, 'counted', (ip) => known.get(ip));
  fillTop('top-prefixes', topOf(prefixes), 'counted');
}

$('block-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const subject = $('block-subject').value.trim();
  const kind = /^[0-9.]+$|:/.test(subject) ? 'ip' : 'user';
  const q = `${kind}=${encodeURIComponent(subject)}&for=${encodeURIComponent($('block-for').value.trim())}`;
  act(`/api/v1/blocks?${q}`, 'POST', `Blocked ${subject}.`).then((ok) => ok && ($('block-subject').value = ''));
});


// ---- one account: its counters, its login history (when kept), reset -------------------

async function lookUp(user) {
  const q = `user=${encodeURIComponent(user)}`;
  const { limits } = await api(`/api/v1/limits?${q}`);
  $('account-limits').replaceChildren(
    ...limits.map((l) => {
      const tr = el('tr');
      tr.append(el('td', l.rule), el('td', `${l.value} ${l.count}`), el('td', l.limit), el('td', l.blocked ? remaining(new Date(Date.now() + l.blockedSeconds * 1000).toISOString()) : 'no'));
      return tr;
    }),
  );
  let history = null;
  try {
    history = await api(`/api/v1/history?${q}`);
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  $('account-hash').textContent = history && history.userHash ? `${user}: user #${String(history.userHash).slice(0, 12)}` : user;
  $('account-history').hidden = !history;
  $('account-history-rows').replaceChildren(
    ...(history ? history.entries : []).map((h) => {
      const tr = el('tr');
      tr.append(el('td', h.network, 'mono'), el('td', h.protocol), el('td', h.result), el('td', h.count));
      tr.append(el('td', new Date(h.first).toLocaleString()), el('td', new Date(h.last).toLocaleString()));
      return tr;
    }),
  );
  $('account-view').hidden = false;
}

$('account-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('account-user').value.trim();
  try {
    await lookUp(user);
    say('', false);
  } catch (e) {
    if (e instanceof Unauthorized) showLogin('The token is no longer accepted: log in again.');
    else say(e.message, true);
  }
});

$('account-reset').addEventListener('click', async () => {
  const user = $('account-user').value.trim();
  if (!user) return $('account-user').reportValidity();
  if (await act(`/api/v1/limits?user=${encodeURIComponent(user)}`, 'DELETE', `Reset ${user}.`)) await lookUp(user).catch(() => undefined);
});

// ---- health -----------------------------------------------------------------------------

async function refreshHealth() {
  const r = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' });
  const { checks } = await r.json();
  $('health-list').replaceChildren(
    ...Object.entries(checks).map(([name, up]) => {
      const li = el('li', `${name}: `);
      li.append(el('span', up ? 'up' : 'DOWN', up ? 'up' : 'down'));
      return li;
    }),
  );
}

// ---- live sessions (when this mailgate has the sessions endpoints) ----------------------

async function refreshSessions() {
  let body;
  try {
    body = await api('/api/v1/sessions');
  } catch (e) {
    if (e.status === 404) return void ($('sessions').hidden = true);
    throw e;
  }
  const sessions = body.sessions || [];
  $('sessions').hidden = false;
  $('sessions-empty').hidden = sessions.length > 0;
  $('sessions-more').textContent = body.total > sessions.length ? `${sessions.length} of ${body.total} listed, the oldest first.` : '';
  $('session-rows').replaceChildren(
    ...sessions.map((s) => {
      const tr = el('tr');
      const ip = s.ip || '';
      tr.append(el('td', s.user || '', 'mono'), el('td', ip, 'mono'), el('td', s.protocol || ''), el('td', s.tls || 'no'));
      tr.append(el('td', s.since ? new Date(s.since).toLocaleTimeString() : ''), el('td', `${s.bytesIn ?? 0} in, ${s.bytesOut ?? 0} out`));
      const td = el('td');
      for (const [by, value] of [['user', s.user], ['ip', ip]]) {
        if (!value) continue;
        const btn = el('button', by === 'user' ? 'Kick user' : 'Kick address');
        btn.type = 'button';
        btn.setAttribute('aria-label', `Kick ${by} ${value}`);
        btn.addEventListener('click', () => act(`/api/v1/sessions/kick?${by}=${encodeURIComponent(value)}`, 'POST', `Kicked ${by} ${value}.`));
        td.append(btn, ' ');
      }
      tr.append(td);
      return tr;
    }),
  );
}

// ---- actions ----------------------------------------------------------------------------

/** Runs an action, says what came of it, refreshes at once; true when it worked. */
async function act(path, method, done) {
  try {
    await api(path, method);
    say(done, false);
    await refresh();
    return true;
  } catch (e) {
    if (e instanceof Unauthorized) showLogin('The token is no longer accepted: log in again.');
    else say(e.message, true);
    return false;
  }
}

if (sessionStorage.getItem(TOKEN_KEY)) showConsole();
else showLogin('');
