// mailgate console, one account looked up by name: its counters per rule, its keyed hash (to
// match the top lists), its login history when /api/v1/history answers, its sending counts
// (sending.js); reset.
import { $, act, api, el, hooks, remaining, say, Unauthorized } from './lib.js';
import { showSending } from './sending.js';

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
      const where = [h.asn !== undefined ? `AS${h.asn}` : '', h.country || ''].filter(Boolean).join(', ');
      tr.append(el('td', h.network, 'mono'), el('td', where), el('td', h.protocol), el('td', h.result), el('td', h.count));
      tr.append(el('td', new Date(h.first).toLocaleString()), el('td', new Date(h.last).toLocaleString()));
      return tr;
    }),
  );
  await showSending(user);
  $('account-view').hidden = false;
}

$('account-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('account-user').value.trim();
  try {
    await lookUp(user);
    say('', false);
  } catch (e) {
    if (e instanceof Unauthorized) hooks.denied();
    else say(e.message, true);
  }
});

$('account-reset').addEventListener('click', async () => {
  const user = $('account-user').value.trim();
  if (!user) return $('account-user').reportValidity();
  if (await act(`/api/v1/limits?user=${encodeURIComponent(user)}`, 'DELETE', `Reset ${user}.`)) await lookUp(user).catch(() => undefined);
});
