// The process logger (pino, JSON lines). Secrets never enter a log object; redact is the
// second line of defence for field names that could carry one.
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Fixed vocabulary of events (the `event` field). */
export type LogEvent =
  | 'proxy.start'
  | 'proxy.stop'
  | 'listener.start'
  | 'tls.dev-certificate'
  | 'session.open'
  | 'session.close'
  | 'tls.failed'
  | 'starttls.injection'
  | 'auth.attempt'
  | 'splice.end';

export const REDACT_PATHS = [
  'password',
  '*.password',
  'pass',
  '*.pass',
  'token',
  '*.token',
  'credentials',
  '*.credentials',
  'authorization',
  '*.authorization',
  'secret',
  '*.secret',
];

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'mailgate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    dest ?? pino.destination({ fd: 1, sync: false }),
  );
}
