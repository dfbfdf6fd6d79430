// A real SMTP server (smtp-server) that accepts and keeps every message: the relay Dovecot's
// submission service hands mail to in tests. Loopback, free port, no TLS, no auth.
import { SMTPServer } from 'smtp-server';
import { freePort } from './ports.js';

export interface SinkMessage {
  from: string;
  to: string[];
  raw: Buffer;
}

export interface SmtpSink {
  host: string;
  port: number;
  messages: SinkMessage[];
  stop(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: SinkMessage[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        });
        cb();
      });
    },
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port,
    messages,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
