// mailgate console, shared by its parts: the API call with the bearer token (kept in
// sessionStorage, never a URL, a cookie or a log), elements made with textContent only, the
// message line, and running an action (say what came of it, refresh at once).

export const TOKEN_KEY = 'mailgate.token';

export const $ = (id) => document.getElementById(id);

/** An element with text (never parsed as HTML) and optional class. */
export function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

/** A button that runs `onClick`, with a label for screen readers when the text is short. */
export function button(text, label, onClick) {
  const b = el('button', text);
  b.type = 'button';
  if (label) b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

export function say(text, isError) {
  const m = $('message');
  m.textContent = text;
  m.classList.toggle('error', !!isError);
}

export class Unauthorized extends Error {}

/** One API call; the token given, else the one kept (none: no Authorization header, for an
 *  admin endpoint that needs no token). problem+json details become the error's message. */
export async function api(path, method = 'GET', token = sessionStorage.getItem(TOKEN_KEY)) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const r = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
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

/** Time left until an ISO time, as "1h 5m". */
export function remaining(iso) {
  return span((Date.parse(iso) - Date.now()) / 1000);
}

/** A number of seconds as "1d 2h", "1h 5m", "5m 3s" or "3s". */
export function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${s}s`;
}

/** Set by console.js: refresh every panel; back to the login form with a reason. */
export const hooks = { refresh: async () => {}, denied: () => {} };

/** Runs an action, says what came of it, refreshes at once; true when it worked. */
export async function act(path, method, done) {
  try {
    await api(path, method);
    say(done, false);
    await hooks.refresh();
    return true;
  } catch (e) {
    if (e instanceof Unauthorized) hooks.denied();
    else say(e.message, true);
    return false;
  }
}
