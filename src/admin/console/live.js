// mailgate console, what runs now: the live sessions after login (kick a user or an address
// on every instance) and the nodes of the deployment (GET /api/v1/nodes: every instance sharing
// the Redis, or this one and its workers), each panel shown when its endpoint answers.
import { $, act, api, button, el } from './lib.js';

/** The body of an endpoint, or null when this mailgate does not have it (404: panel hidden). */
async function optional(path, panel) {
  try {
    const body = await api(path);
    $(panel).hidden = false;
    return body;
  } catch (e) {
    if (e.status !== 404) throw e;
    $(panel).hidden = true;
    return null;
  }
}

export async function refreshSessions() {
  const body = await optional('/api/v1/sessions', 'sessions');
  if (!body) return;
  const sessions = body.sessions || [];
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
        td.append(button(by === 'user' ? 'Kick user' : 'Kick address', `Kick ${by} ${value}`, () => act(`/api/v1/sessions/kick?${by}=${encodeURIComponent(value)}`, 'POST', `Kicked ${by} ${value}.`)), ' ');
      }
      tr.append(td);
      return tr;
    }),
  );
}

/** How long ago an ISO time was, as "12s", "3m" or "2h 5m". */
function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m` : `${s}s`;
}

export async function refreshNodes() {
  const body = await optional('/api/v1/nodes', 'nodes');
  if (!body) return;
  const nodes = body.nodes || [];
  $('nodes-note').textContent = body.complete ? `${nodes.length} live, as each last said.` : 'The shared store cannot be read: this node alone.';
  $('node-rows').replaceChildren(
    ...nodes.map((n) => {
      const tr = el('tr');
      const name = el('th', `${n.host} (pid ${n.pid})`);
      name.scope = 'row';
      if (n.self) name.append(' ', el('span', 'this node', 'note'));
      const workers = n.workers && n.workers.length ? `${n.workers.length} (pids ${n.workers.map((w) => w.pid).join(', ')})` : 'one process';
      // A node of another version may say less: what it leaves out shows as "?".
      const store = el('td', n.store ? `${n.store.type} ` : '?');
      if (n.store) store.append(el('span', n.store.up ? 'up' : 'DOWN', n.store.up ? 'up' : 'down'));
      const attack = n.attackMode ? `${n.attackMode.active ? 'ON' : 'off'}${n.attackMode.forced ? ` (forced ${n.attackMode.forced})` : ''}` : '?';
      tr.append(name, el('td', n.version), el('td', workers), el('td', n.sessions ?? '?'), el('td', n.connections ?? '?'), store, el('td', attack));
      const up = el('td', ago(n.started));
      up.title = `started ${new Date(n.started).toLocaleString()}`;
      tr.append(up, el('td', `${ago(n.beat)} ago`));
      return tr;
    }),
  );
}
