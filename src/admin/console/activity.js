// mailgate console, logins by outcome over the last hour: mailgate_login_attempts_total from
// /metrics differenced per minute in the page (kept in the tab's sessionStorage across
// reloads), drawn as stacked SVG bars. No endpoint of its own.
import { $, api, el } from './lib.js';

const HISTORY_KEY = 'mailgate.activity';
const OUTCOMES = ['ok', 'fail', 'limited', 'backend-error', 'invalid', 'locked'];
const MINUTES = 60;

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

export async function refreshActivity() {
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
