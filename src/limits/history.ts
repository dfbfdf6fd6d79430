// An account's login history and what it tells (history, notify): after the verdict, one entry
// per (client network, protocol, result, IMAP ID name) in a capped record of the store, carried
// by the login's settle where the store can (row(): one script on one Redis server), else
// written off the login's critical path; the keyed prints of the passwords that succeeded last
// (retired-password); the alert waiting for the owner's next IMAP login. Never throws into a
// login: store errors are logged.
import type { Clock } from '../clock.js';
import type { HistoryConfig, NotifyConfig } from '../config/accounts-schema.js';
import type { AlertEvent } from '../integrations/alerts.js';
import type { Logger } from '../logging/logger.js';
import type { LimitStore, RecordEntry, RecordRow } from '../stores/store.js';
import { clientKey, type KeyBuilder } from './keys.js';

export type HistoryResult = 'ok' | 'fail';

/** Where account events go: the alert webhooks (worker mode: through the primary). */
export type EmitAlert = (e: AlertEvent) => void;

/** One login as history keeps it (the user canonical; the print from passwordPrint). */
export interface LoginFacts {
  user: string;
  ip: string;
  protocol: string;
  result: HistoryResult;
  print?: string;
  /** IMAP: the client's ID name (printable, no "|"). */
  client?: string;
  /** What GeoIP knows of the address (limits.groups' databases), when it knows. */
  asn?: number;
  country?: string;
}

/** What a new-network event says is new: the network always, the ASN and the country when
 *  GeoIP knows them and none of the account's kept successes came from them. */
export type NewPart = 'network' | 'asn' | 'country';

/** Where a client is, as a history row keeps it: only values that cannot hold a "|". */
interface Place {
  network: string;
  asn?: number;
  country?: string;
}

/** The network history groups a client by: its IPv4 /24 or IPv6 /64 (one household, one
 *  office), so one account's history does not list every address a phone gets. */
export const networkOf = (ip: string): string => clientKey(ip, 64, 24);

/** A history entry's field: network|protocol|result[|client[|asn|country]] ("|" occurs in none
 *  of them; an empty client or ASN is written as nothing). The ASN and country are part of the
 *  row's identity, so a network that moves to another AS (a GeoIP update) starts a new row. */
export const historyField = (network: string, protocol: string, result: HistoryResult, client?: string, geo: Omit<Place, 'network'> = {}): string => {
  const where = geo.asn !== undefined || geo.country !== undefined ? `|${geo.asn ?? ''}|${geo.country ?? ''}` : '';
  return `${network}|${protocol}|${result}${client || where ? `|${client ?? ''}` : ''}${where}`;
};

/** The login's ASN and country as a row may keep them: an AS number, a two-letter code
 *  (ISO 3166-1, as GeoLite2 and DB-IP write it); anything else is left out. */
export function geoOf(f: Pick<LoginFacts, 'asn' | 'country'>): Omit<Place, 'network'> {
  const asn = f.asn !== undefined && Number.isSafeInteger(f.asn) && f.asn >= 0 ? f.asn : undefined;
  const country = f.country !== undefined && /^[A-Za-z]{2}$/.test(f.country) ? f.country.toUpperCase() : undefined;
  return { ...(asn !== undefined ? { asn } : {}), ...(country !== undefined ? { country } : {}) };
}

export function parseHistoryField(field: string): Place & { protocol: string; result: string; client?: string } {
  const [network = '', protocol = '', result = '', client, asn, country] = field.split('|');
  return { network, protocol, result, ...(client ? { client } : {}), ...(asn ? { asn: Number(asn) } : {}), ...(country ? { country } : {}) };
}

/** What is new about `now` against the places of an account's kept successes: empty when the
 *  network is known (a known network is nothing to tell); the ASN and country only when GeoIP
 *  placed this login and some kept success, so "new" compares like with like. */
export function newParts(now: Place, known: readonly Place[]): NewPart[] {
  if (known.length === 0 || known.some((k) => k.network === now.network)) return [];
  const parts: NewPart[] = ['network'];
  for (const part of ['asn', 'country'] as const) {
    const seen = known.flatMap((k) => (k[part] === undefined ? [] : [k[part]]));
    if (now[part] !== undefined && seen.length > 0 && !seen.includes(now[part])) parts.push(part);
  }
  return parts;
}

/** Whether `print` is a retired password of the account: one that succeeded before, not the
 *  newest (prints newest first, as historyGet gives them). */
export function isRetired(prints: readonly RecordEntry[], print: string): boolean {
  return prints.length > 1 && prints[0]!.field !== print && prints.some((p) => p.field === print);
}

/** The field of the one alert an account may have waiting (pendingKey). */
const PENDING = 'retired-password';

export class AccountHistory {
  constructor(
    private readonly store: LimitStore,
    private readonly keys: KeyBuilder,
    private readonly clock: Clock,
    private readonly cfg: { history: HistoryConfig; notify?: NotifyConfig },
    private readonly log: Logger,
    private readonly emit: EmitAlert,
  ) {}

  /** The keyed print of the login's password, when the retired-password check needs one. */
  print(user: string, secret: Buffer | undefined): string | undefined {
    return this.cfg.notify?.retiredPassword && secret ? this.keys.passwordPrint(user, secret) : undefined;
  }

  /** The login's history row when it is all this login writes here (history on; neither
   *  newNetwork's read of the account's successes nor retired-password's prints): the store
   *  may write it with the login's settle (Policy.record), after everything else it writes
   *  there. Undefined: record() writes what there is itself. */
  row(f: LoginFacts): RecordRow | undefined {
    const n = this.cfg.notify;
    if (!this.cfg.history.enabled || !this.store.historyAdd || !this.store.historyGet) return undefined;
    if ((f.result === 'ok' && n?.newNetwork) || (f.print && n?.retiredPassword)) return undefined;
    return this.rowOf(f, this.clock.now());
  }

  /** Fire and forget: the login never waits for it, and a store error is only logged. `row`:
   *  the row() the settle carried; one it wrote leaves nothing to do, one it did not is written
   *  here. */
  record(f: LoginFacts, row?: RecordRow): void {
    if (!this.store.historyAdd || !this.store.historyGet || row?.written) return;
    void this.write(f, row).catch((err: Error) => this.log.error({ event: 'auth.record-failed', err: err.message }, 'could not record the login history'));
  }

  /** `made`: the row row() made for this login, if it did (written as it is, not made twice). */
  private async write(f: LoginFacts, made?: RecordRow): Promise<void> {
    const store = this.store as Required<LimitStore>;
    const now = this.clock.now();
    const { enabled, keep } = this.cfg.history;
    const n = this.cfg.notify;
    const network = networkOf(f.ip);
    const geo = geoOf(f);
    // Made for an event only (most logins send none).
    const event = () => ({ subject: this.keys.userHash(f.user), network, protocol: f.protocol });
    if (enabled && f.result === 'ok' && n?.newNetwork) {
      const oks = (await store.historyGet(this.keys.historyKey(f.user))).filter((r) => r.lastMs > now - keep).map((r) => parseHistoryField(r.field)).filter((p) => p.result === 'ok');
      const parts = newParts({ network, ...geo }, oks);
      if (parts.length > 0) this.emit({ kind: 'new-network', ...event(), ...geo, new: parts });
    }
    const prints = f.print && n?.retiredPassword ? this.keys.printsKey(f.user) : undefined;
    // The history row last: once it shows, everything this login wrote is there.
    if (prints && f.result === 'ok') await store.historyAdd(prints, f.print!, { atMs: now, ttlMs: keep, cap: n!.passwords });
    if (enabled) {
      const row = made ?? this.rowOf(f, now);
      await store.historyAdd(row.key, row.field, row.bounds);
    }
    if (!prints || f.result === 'ok' || !isRetired(await store.historyGet(prints), f.print!)) return;
    // Written before the event goes out: whoever acts on the event finds the alert waiting.
    if (n!.imapAlert) await store.historyAdd(this.keys.pendingKey(f.user), PENDING, { atMs: now, ttlMs: keep, cap: 1 });
    this.emit({ kind: 'retired-password', ...event() });
  }

  /** The history row of a login at `now`. A failure is kept for an account with a history only
   *  (existing): a spray of made-up names stores nothing. */
  private rowOf(f: LoginFacts, now: number): RecordRow {
    const { keep, maxEntries } = this.cfg.history;
    const field = historyField(networkOf(f.ip), f.protocol, f.result, f.client, geoOf(f));
    return { key: this.keys.historyKey(f.user), field, bounds: { atMs: now, ttlMs: keep, cap: maxEntries, existing: f.result === 'fail' } };
  }

  /** The [ALERT] wording for the owner's successful IMAP login, taken once (undefined: none
   *  waiting). One store call per successful IMAP login while notify.imapAlert is set. */
  async takeAlert(user: string): Promise<string | undefined> {
    const text = this.cfg.notify?.retiredPassword ? this.cfg.notify.imapAlert : undefined;
    if (text === undefined || !this.store.historyTake) return undefined;
    try {
      return (await this.store.historyTake(this.keys.pendingKey(user), PENDING)) ? text : undefined;
    } catch (err) {
      this.log.error({ event: 'auth.record-failed', err: (err as Error).message }, 'could not read the account alert');
      return undefined;
    }
  }

  /** GET /api/v1/history: the account's entries, newest first. */
  async entries(user: string): Promise<(ReturnType<typeof parseHistoryField> & { count: number; first: string; last: string })[]> {
    const now = this.clock.now();
    const rows = (await this.store.historyGet?.(this.keys.historyKey(user))) ?? [];
    return rows
      .filter((r) => r.lastMs > now - this.cfg.history.keep)
      .map((r) => ({ ...parseHistoryField(r.field), count: r.count, first: new Date(r.firstMs).toISOString(), last: new Date(r.lastMs).toISOString() }));
  }
}
