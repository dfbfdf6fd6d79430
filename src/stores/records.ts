// Capped records (an account's login history, its password prints) as the memory store keeps
// them: one row per field with its count and first and last event, rows older than the record's
// TTL dropped, at most `cap` rows (the one seen least lately goes first). Pure; the Redis copy
// of these rules is lua/record.lua.
import type { RecordBounds, RecordEntry } from './store.js';

export type Rows = Map<string, RecordEntry>;

/** Counts one event of `field` in `rows` (changed in place) under `b`. */
export function addToRecord(rows: Rows, field: string, b: RecordBounds): void {
  dropOld(rows, b.atMs, b.ttlMs);
  const row = rows.get(field);
  if (row) {
    row.count++;
    row.lastMs = Math.max(row.lastMs, b.atMs);
  } else {
    rows.set(field, { field, count: 1, firstMs: b.atMs, lastMs: b.atMs });
  }
  while (rows.size > b.cap) rows.delete(oldest(rows)!);
}

/** Rows whose last event is over ttlMs ago go. */
export function dropOld(rows: Rows, nowMs: number, ttlMs: number): void {
  for (const [f, r] of rows) if (r.lastMs <= nowMs - ttlMs) rows.delete(f);
}

function oldest(rows: Rows): string | undefined {
  let out: RecordEntry | undefined;
  for (const r of rows.values()) if (!out || r.lastMs < out.lastMs) out = r;
  return out?.field;
}

/** Newest last event first (ties: the field, so the order is stable). */
export function sortedRows(rows: Iterable<RecordEntry>): RecordEntry[] {
  return [...rows].sort((a, b) => b.lastMs - a.lastMs || (a.field < b.field ? -1 : 1));
}
