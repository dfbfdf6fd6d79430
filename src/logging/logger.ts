// The process logger (pino, JSON lines). Secrets never enter a log object; redact is the
// second line of defence for field names that could carry one. Every line reaches stdout in
// one write(2) of at most PIPE_BUF bytes, so lines of several processes sharing stdout (worker
// mode) never interleave.
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** The fixed vocabulary of the `event` field: every `event: '…'` in src/ is one of these and
 *  each of these is used (test/unit/log-events.test.ts holds both ways); README lists them. */
export const LOG_EVENTS = [
  'proxy.start',
  'proxy.stop',
  'proxy.shutdown',
  'proxy.refused',
  'listener.start',
  'listener.error',
  'tls.dev-certificate',
  'session.open',
  'session.close',
  'session.refused',
  'session.evicted',
  'session.kicked',
  'session.admission-failed',
  'tls.failed',
  'starttls.injection',
  'auth.attempt',
  'auth.dry-run',
  'auth.record-failed',
  'auth.bug',
  'auth.attack-mode-on',
  'auth.attack-mode-off',
  'auth.single-source',
  'splice.end',
  'sending.store-failed',
  'sending.refused',
  'smtp.tracker-lost',
  'store.fallback',
  'store.recovered',
  'backend.probe',
  'backend.down',
  'backend.up',
  'config.reload',
  'config.warning',
  'admin.start',
  'admin.request',
  'admin.error',
  'admin.attack-mode',
  'nodes.error',
  'policy.start',
  'policy.bad-request',
  'policy.error',
  'policy.late',
  'policy.no-backend',
  'policy.unreported',
  'groups.loaded',
  'groups.error',
  'dnsbl.down',
  'dnsbl.up',
  'integrations.error',
  'integrations.recovered',
  'integrations.resync',
  'worker.start',
  'worker.stop',
  'worker.exit',
  'worker.ipc-fallback',
  'worker.ipc-recovered',
] as const;

export type LogEvent = (typeof LOG_EVENTS)[number];

/** Most bytes one write(2) to stdout carries: PIPE_BUF (Linux, and POSIX's floor is 512), the
 *  most a pipe write is atomic for, so lines written by several processes never mix. sonic-boom
 *  cuts its buffer only between whole lines, and fitLine keeps every line under it. */
export const LOG_MAX_WRITE = 4096;
/** Log lines are written in batches of at least this many bytes (one write per line cost
 *  4-10% of CPU under load, see BENCHMARKS.md); flushed on stop and on a timer. Below
 *  LOG_MAX_WRITE, as sonic-boom requires. */
const LOG_BUFFER_BYTES = 2048;
/** Longest a string value keeps when a line must be shortened to fit one write. */
const FIT_VALUE_CHARS = 1024;
/** Longest a buffered log line waits. */
const LOG_FLUSH_MS = 1000;

/** Field names that could carry a secret, redacted wherever they appear at the top level of a
 *  log object or in a logger's bindings. Log objects are flat by convention (every call site
 *  logs scalars and string arrays); pino's "*.name" wildcards, which would also cover one
 *  level of nesting, cost about 10 µs per log line (measured, BENCHMARKS.md), more than the
 *  rest of the line. */
export const REDACT_PATHS = ['password', 'pass', 'token', 'credentials', 'authorization', 'secret'];

/** `worker`: in worker mode, the process's number on every line (0: the primary). */
export function createLogger(level: string, dest?: DestinationStream, worker?: number): Logger {
  return pino(
    {
      level,
      base: worker === undefined ? { name: 'mailgate' } : { name: 'mailgate', worker },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: { streamWrite: fitLine },
    },
    dest ?? bufferedStdout(),
  );
}

/** Resolves once the lines the logger buffered are written (a worker, before it tells the
 *  primary it started, so `proxy.start` follows every worker's `listener.start`). */
export function flushLog(log: Logger): Promise<void> {
  return new Promise((resolve) => log.flush(() => resolve()));
}

const shorten = (v: unknown, chars: number): unknown => {
  if (typeof v === 'string') return v.length > chars ? `${v.slice(0, chars)}…` : v;
  if (Array.isArray(v)) return v.slice(0, chars).map((x) => shorten(x, chars));
  return v !== null && typeof v === 'object' ? shorten(JSON.stringify(v), chars) : v;
};

/** The line as it is when it fits one atomic write (nearly every line: checked by length
 *  first), else the same JSON with its long values cut and `truncated: true`. */
export function fitLine(line: string, max = LOG_MAX_WRITE): string {
  // A UTF-16 unit is at most 3 bytes of UTF-8.
  if (line.length * 3 <= max || Buffer.byteLength(line) <= max) return line;
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `${JSON.stringify({ msg: 'unparseable log line dropped', truncated: true })}\n`;
  }
  for (let chars = FIT_VALUE_CHARS; chars >= 8; chars >>= 1) {
    const cut = Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, shorten(v, chars)]));
    const out = `${JSON.stringify({ ...cut, truncated: true })}\n`;
    if (Buffer.byteLength(out) <= max) return out;
  }
  const { level, time, name, worker, event } = obj;
  return `${JSON.stringify({ level, time, name, worker, event, msg: 'log line too long', truncated: true })}\n`;
}

function bufferedStdout(): DestinationStream {
  const d = pino.destination({ fd: 1, sync: false, minLength: LOG_BUFFER_BYTES, maxWrite: LOG_MAX_WRITE });
  const flush = (sync: boolean) => {
    try {
      if (sync) d.flushSync();
      else d.flush();
    } catch {
      /* not open yet, or stdout gone: nothing to do */
    }
  };
  setInterval(() => flush(false), LOG_FLUSH_MS).unref();
  // Whatever is buffered reaches stdout before the process exits.
  process.once('exit', () => flush(true));
  return d;
}
