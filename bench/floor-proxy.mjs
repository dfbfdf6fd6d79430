// The Node floor: the least a Node process can do to pass an IMAP login through, as a
// benchmark reference, never a product. Accept, greet, read one command line, connect to the
// backend, read its greeting, replay the line, read the tagged reply, hand it to the client
// and pipe both ways. No limits, no parsing beyond lines, no logging, no bounds: the socket
// and event-loop costs every Node login proxy pays, which mailgate's CPU per login is compared
// with (BENCHMARKS.md). Given a certificate and key, a first line (the client's STARTTLS) is
// answered OK and the rest runs over a TLS socket made as mailgate makes its own (the
// handshake floor). `refuse` instead: every connection gets a BYE and is closed, the least a
// Node server spends on a connection it turns away.
// Usage: node bench/floor-proxy.mjs LISTEN_PORT BACKEND_PORT [CERT KEY | refuse]
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const [listenPort, backendPort] = process.argv.slice(2, 4).map(Number);
const [cert, key] = process.argv.slice(4);
const refuse = cert === 'refuse';
// FLOOR_GROUPS: key exchange groups (mailgate's tls.groups), for bench/floor-memory.ts.
const groups = process.env.FLOOR_GROUPS ? { ecdhCurve: process.env.FLOOR_GROUPS } : {};
const context = cert && !refuse ? tls.createSecureContext({ cert: readFileSync(cert), key: readFileSync(key), ...groups }) : null;
const GREETING = `* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ ${context ? 'STARTTLS ' : ''}AUTH=PLAIN] floor ready\r\n`;
const BYE = Buffer.from('* BYE [UNAVAILABLE] Too many failed logins from your address, try again later\r\n');

/** A first line that is STARTTLS gets its OK and the same TLS socket mailgate makes (server
 *  side, one shared context); any other first line is the login, served in plaintext. */
function startTls(raw, then) {
  let line = '';
  const onLine = (d) => {
    line += d.toString('latin1');
    if (!line.includes('\n')) return;
    raw.off('data', onLine);
    raw.pause();
    if (!/^\S+ STARTTLS\r?\n$/i.test(line)) return serve(raw, line);
    raw.write(`${line.split(' ')[0]} OK Begin TLS negotiation now\r\n`);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    secure.on('error', () => secure.destroy());
    secure.once('secure', () => then(secure));
  };
  raw.on('data', onLine);
}

net
  .createServer((raw) => {
    raw.setNoDelay(true);
    raw.on('error', () => raw.destroy());
    if (refuse) return void raw.end(BYE);
    raw.write(GREETING);
    if (context) startTls(raw, serve);
    else serve(raw);
  })
  .listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${listenPort}\n`));

function serve(client, first = '') {
  let pending = first;
  const onClient = (d) => {
    pending += d.toString('latin1');
    const nl = pending.indexOf('\n');
    if (nl < 0) return;
    client.off('data', onClient);
    client.pause();
    const command = pending.slice(0, nl + 1);
    const after = pending.slice(nl + 1);
    const backend = net.connect(backendPort, '127.0.0.1');
    backend.setNoDelay(true);
    backend.on('error', () => client.destroy());
    client.on('close', () => backend.destroy());
    let lines = '';
    let greeted = false;
    const onBackend = (b) => {
      lines += b.toString('latin1');
      for (let i = lines.indexOf('\n'); i >= 0; i = lines.indexOf('\n')) {
        const line = lines.slice(0, i + 1);
        lines = lines.slice(i + 1);
        if (!greeted) {
          greeted = true;
          backend.write(command);
        } else if (!line.startsWith('* ')) {
          backend.off('data', onBackend);
          client.write(line + lines);
          if (after) backend.write(after);
          client.pipe(backend);
          backend.pipe(client);
          client.resume();
          return;
        }
      }
    };
    backend.on('data', onBackend);
  };
  if (first.includes('\n')) onClient(Buffer.alloc(0));
  else {
    client.on('data', onClient);
    client.resume();
  }
}

// A normal exit on a signal, so `node --cpu-prof` writes its profile.
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(0));
