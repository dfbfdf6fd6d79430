// mailgate console, an account's sending on submission (limits.sending, GET /api/v1/sending):
// messages, recipients and first-time recipients counted against their limits, the window
// left; reset the counts, or the counts and the known recipients. Shown with the account.
import { $, act, api, el, span, Unauthorized } from './lib.js';

const ROWS = [
  ['messages', 'Messages'],
  ['recipients', 'Recipients'],
  ['newRecipients', 'First-time recipients'],
];

/** The account the counts on the page are of (the buttons act on it, not on the field). */
let shown = null;

function state(text, isError) {
  $('sending-state').textContent = text;
  $('sending-state').classList.toggle('error', !!isError);
}

function row([key, label], v) {
  const tr = el('tr');
  const th = el('th', label);
  th.scope = 'row';
  const { count, limit, remaining } = v[key];
  const left = limit === null ? el('td', 'not limited') : el('td', remaining === 0 ? '0 (reached)' : remaining, remaining === 0 ? 'down' : undefined);
  tr.append(th, el('td', count), el('td', limit === null ? 'none' : limit), left);
  return tr;
}

/** "1d", "1d 2h", "5m": a whole unit without its zero tail. */
const period = (seconds) => span(seconds).replace(/ 0[hms]$/, '');

function windowText(v) {
  const of = `window of ${period(v.windowSeconds)}`;
  return v.windowLeftSeconds > 0 ? `Counting in a ${of}: ${period(v.windowLeftSeconds)} left, then the counts start again.` : `Nothing counted in the current ${of}: it opens with the next message sent.`;
}

/** Shows `user`'s sending counts; a note when this mailgate keeps none (404: limits.sending
 *  is not set). Only a refused token is thrown: any other failure is said in the section. */
export async function showSending(user) {
  shown = user;
  $('account-sending').hidden = false;
  let v;
  try {
    v = await api(`/api/v1/sending?user=${encodeURIComponent(user)}`);
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    if (shown !== user) return;
    $('sending-counts').hidden = true;
    if (e.status === 404) state('Sending limits are off (limits.sending is not set).', false);
    else state(`Could not read the sending counts: ${e.message}`, true);
    return;
  }
  if (shown !== user) return;
  $('sending-rows').replaceChildren(...ROWS.map((r) => row(r, v)));
  state(windowText(v), false);
  $('sending-counts').hidden = false;
}

async function reset(known) {
  const user = shown;
  if (user === null) return;
  const done = known ? `Reset the sending counts of ${user} and forgot its known recipients.` : `Reset the sending counts of ${user}.`;
  if (await act(`/api/v1/sending?user=${encodeURIComponent(user)}${known ? '&known=1' : ''}`, 'DELETE', done)) await showSending(user).catch(() => undefined);
}

$('sending-reset').addEventListener('click', () => reset(false));
$('sending-forget').addEventListener('click', () => reset(true));
