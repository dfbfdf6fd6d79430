// The SMTP server Dovecot's submission service relays to in the submission phase: smtp-server
// in its own process, taking every message and keeping nothing (the bytes are read and
// dropped). Usage: node bench/smtp-sink.mjs <port>; prints "ready" once listening.
import { SMTPServer } from 'smtp-server';

const port = Number(process.argv[2]);
let messages = 0;
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  size: 0,
  onData(stream, _session, cb) {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      messages++;
      cb();
    });
  },
});
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ messages })}\n`);
  server.close(() => process.exit(0));
});
