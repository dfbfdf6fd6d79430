// mailgate console, blocks: each with rule, reason and time left, and Unblock (an address by
// itself, an account by its keyed hash: the page never knows its name); block by hand; the
// most blocked accounts, sources (with ASN/country when GeoIP knows them) and prefixes.
import { $, act, api, button, el, remaining } from './lib.js';

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

export async function refreshBlocks() {
  const { blocks } = await api('/api/v1/blocks');
  blocks.sort((a, b) => Date.parse(b.since) - Date.parse(a.since));
  const rows = blocks.map((b) => {
    const tr = el('tr');
    tr.append(el('td', subjectOf(b), 'mono'), el('td', b.rule || '?'));
    tr.append(el('td', b.count > 0 ? `${b.count} counted (key ${b.key}) since ${new Date(b.since).toLocaleTimeString()}` : 'blocked by hand'));
    tr.append(el('td', remaining(b.expires)));
    const td = el('td');
    if (b.ip) {
      td.append(button('Unblock', `Unblock ${b.ip}`, () => act(`/api/v1/blocks/${encodeURIComponent(b.ip)}`, 'DELETE', `Unblocked ${b.ip}.`)));
    } else if (b.userHash) {
      const who = `user #${b.userHash.slice(0, 12)}`;
      td.append(button('Unblock', `Unblock ${who}`, () => act(`/api/v1/blocks?userHash=${encodeURIComponent(b.userHash)}`, 'DELETE', `Unblocked ${who}.`)));
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
