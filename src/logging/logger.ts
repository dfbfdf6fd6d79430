// The process logger (pino, JSON lines). Secrets never enter a log object; redact is the
// second line of defence for field names that could carry one.
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
] as const;

export type LogEvent = (typeof LOG_EVENTS)[number];

/** Log lines are written in batches of at least this many bytes (one write per line cost
 *  4-10% of CPU under load, see BENCHMARKS.md); flushed on stop and on a timer. */
const LOG_BUFFER_BYTES = 4096;
/** Longest a buffered log line waits. */
const LOG_FLUSH_MS = 1000;

/** Field names that could carry a secret, redacted wherever they appear at the top level of a
 *  log object or in a logger's bindings. Log objects are flat by convention (every call site
 *  logs scalars and string arrays); pino's "*.name" wildcards, which would also cover one
 *  level of nesting, cost about 10 µs per log line (measured, BENCHMARKS.md), more than the
 *  rest of the line. */
export const REDACT_PATHS = ['password', 'pass', 'token', 'credentials', 'authorization', 'secret'];

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'mailgate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest ?? bufferedStdout(),
  );
}

function bufferedStdout(): DestinationStream {
  const d = pino.destination({ fd: 1, sync: false, minLength: LOG_BUFFER_BYTES });
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
