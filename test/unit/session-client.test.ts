// Who a session's client is (server/session-client.ts): the local end a listener's `listen`
// names is the one its sockets report, and a listener that names none asks the socket.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ListenerConfig } from '../../src/config/schema.js';
import { clientAddress } from '../../src/server/session-client.js';
import { freePort } from '../helpers/ports.js';

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** One accepted socket of a server listening on host:port (port 0: any). */
async function accepted(host: string, port: number): Promise<net.Socket> {
  const server = net.createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const socket = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  c.on('error', () => {});
  const s = await socket;
  s.on('close', () => c.destroy());
  return s;
}

const listener = (listen: string) => ({ name: 'imap', protocol: 'imap', listen }) as ListenerConfig;

describe('clientAddress', () => {
  it("a listener on one IPv4 address gives the local end its sockets report, without asking them", async () => {
    const port = await freePort();
    const s = await accepted('127.0.0.1', port);
    const asked = clientAddress(s, 'abc');
    const named = clientAddress(s, 'abc', listener(`127.0.0.1:${port}`));
    expect(named).toEqual(asked);
    expect(named).toMatchObject({ ip: '127.0.0.1', localIp: '127.0.0.1', localPort: port });
    s.destroy();
  });

  it('a wildcard address or port 0 is asked of the socket', async () => {
    for (const [host, listen] of [['0.0.0.0', '0.0.0.0:PORT'], ['127.0.0.1', '127.0.0.1:0'], ['127.0.0.1', 'localhost:PORT']] as const) {
      const port = await freePort();
      const s = await accepted(host, listen.endsWith(':0') ? 0 : port);
      const actual = (s.address() as net.AddressInfo).port;
      expect(clientAddress(s, 'abc', listener(listen.replace('PORT', String(port))))).toMatchObject({ localIp: '127.0.0.1', localPort: actual });
      s.destroy();
    }
  });
});
