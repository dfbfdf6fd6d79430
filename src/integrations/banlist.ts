// The ban list for firewalls that import one (pfSense/OPNsense URL tables, MikroTik scripts):
// the addresses and networks mailgate turns away at connect, Spamhaus-DROP style text (one
// address or CIDR a line, "; comment") and JSON. Pure.
import type { Ban } from './ban-feed.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** `address ; rule until …` lines, oldest block first, under a comment header. */
export function banlistText(bans: readonly Ban[], now: Date): string {
  const rows = [...bans].sort((a, b) => a.sinceMs - b.sinceMs).map((b) => `${b.cidr} ; ${b.rule} until ${iso(b.untilMs)}`);
  return [`; mailgate ban list, ${now.toISOString()}, ${rows.length} entries`, ...rows, ''].join('\n');
}

export function banlistJson(bans: readonly Ban[]) {
  return { bans: [...bans].sort((a, b) => a.sinceMs - b.sinceMs).map((b) => ({ cidr: b.cidr, rule: b.rule, since: iso(b.sinceMs), expires: iso(b.untilMs) })) };
}
