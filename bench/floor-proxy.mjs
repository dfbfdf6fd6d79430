// The Node floor: the least a Node process can do to pass an IMAP login through, as a
// benchmark reference, never a product. Accept, greet, read one command line, connect to the
// backend, read its greeting, replay the line, read the tagged reply, hand it to the client
// and pipe both ways. No limits, no parsing beyond lines, no logging, no TLS, no bounds: the
// socket and event-loop costs every Node login proxy pays, which mailgate's CPU per login is
// compared with (BENCHMARKS.md). Usage: node bench/floor-proxy.mjs LISTEN_PORT BACKEND_PORT
import net from 'node:net';

const [listenPort, backendPort] = process.argv.slice(2).map(Number);
const GREETING = '* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] floor ready\r\n';

net
  .createServer((client) => {
    client.setNoDelay(true);
    client.on('error', () => client.destroy());
    client.write(GREETING);
    let pending = '';
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
    client.on('data', onClient);
  })
  .listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${listenPort}\n`));

// A normal exit on a signal, so `node --cpu-prof` writes its profile.
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(0));
