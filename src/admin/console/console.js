// mailgate console: logs in with the admin token (kept in sessionStorage, never a URL, a
// cookie or a log), or goes straight in where the admin endpoint needs none (loopback without
// a token), and refreshes every panel every few seconds. Each panel is a module of its own;
// everything renders with textContent only. No framework, no build step.
import { $, act, api, el, hooks, TOKEN_KEY, Unauthorized } from './lib.js';
import { refreshActivity } from './activity.js';
import { refreshBlocks } from './blocks.js';
import './account.js';
import { refreshNodes, refreshSessions } from './live.js';

const REFRESH_MS = 5000;
let timer = null;

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

/** open: the admin endpoint takes no token (nothing to log out of). */
function showConsole(open = false) {
  $('login').hidden = true;
  $('console').hidden = false;
  $('logout').hidden = open;
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

hooks.refresh = () => refresh();
hooks.denied = () => showLogin('The token is no longer accepted: log in again.');

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
  const parts = [refreshActivity, refreshAttack, refreshBlocks, refreshHealth, refreshSessions, refreshNodes];
  const results = await Promise.allSettled(parts.map((f) => f()));
  const denied = results.find((r) => r.status === 'rejected' && r.reason instanceof Unauthorized);
  if (denied) return hooks.denied();
  const failed = results.find((r) => r.status === 'rejected');
  $('status').textContent = failed ? `Updated ${new Date().toLocaleTimeString()}, with errors: ${failed.reason.message}` : `Updated ${new Date().toLocaleTimeString()}`;
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

// ---- start: the kept token, else no token at all if the endpoint takes that, else log in --

async function start() {
  if (sessionStorage.getItem(TOKEN_KEY)) return showConsole();
  try {
    await api('/api/v1/blocks', 'GET', '');
  } catch {
    return showLogin('');
  }
  showConsole(true);
}

start();
