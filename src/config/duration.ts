// Durations as operators write them: "250ms", "90s", "10m", "1h", "7d" or integer seconds.
// Pure: returns milliseconds or null for anything else.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(\d{1,9})(ms|s|m|h|d)?$/;

export function parseDuration(input: unknown): number | null {
  if (typeof input === 'number') {
    return Number.isInteger(input) && input >= 0 ? input * 1000 : null;
  }
  if (typeof input !== 'string') return null;
  const m = DURATION_RE.exec(input.trim());
  if (!m) return null;
  return Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
}
