// The splice over real loopback sockets: bytes unchanged both ways, a client that stops
// reading stops the backend (bounded memory), half-close passed on, idle sessions ended; each
// with Node's own reads and with the shared read buffer of plaintext backends (shared-reads.ts),
// which also must keep the bytes of sessions read at the same time apart.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { splice, type Splice } from '../../src/backend/splice.js';
import { SharedReads } from '../../src/backend/shared-reads.js';

const servers: net.Server[] = [];
afterEach(() => {
  servers.splice(0).forEach((s) => s.close());
});

async function listen(onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

/** A "backend" server, and a proxy port that splices each accepted client to it. */
async function rig(backend: (s: net.Socket) => void, idleMs = 60_000, shared = false, clients = 1) {
  const backendPort = await listen(backend);
  const spliced: { splice: Splice; clientSide: net.Socket; backendSide: net.Socket }[] = [];
  const proxyPort = await listen((clientSide) => {
    clientSide.pause();
    const reads = shared ? new SharedReads() : null;
    const backendSide = net.connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true, ...(reads ? { onread: reads.options } : {}) }, () => {
      spliced.push({ splice: splice(clientSide, backendSide, idleMs), clientSide, backendSide });
    });
    reads?.attach(backendSide);
  });
  const all: net.Socket[] = [];
  for (let i = 0; i < clients; i++) {
    all.push(
      await new Promise<net.Socket>((r) => {
        const c = net.connect({ port: proxyPort, host: '127.0.0.1', allowHalfOpen: true }, () => r(c));
      }),
    );
  }
  while (spliced.length < clients) await new Promise((r) => setTimeout(r, 5));
  return { client: all[0]!, clients: all, spliced, ...spliced[0]! };
}

function pattern(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j += 4) b.writeUInt32BE((i * size + j) >>> 0, j);
  return b;
}

describe.each([
  ['Node reads', false],
  ['the shared read buffer', true],
])('splice with %s', (_name, shared) => {
  it('a client that stops reading stops the backend; memory stays bounded; bytes arrive unchanged', async () => {
    const CHUNK = 64 * 1024;
    const CHUNKS = 1024; // 64 MiB: several times what loopback socket buffers can hold
    let written = 0;
    const sent = createHash('sha256');
    const { client, clientSide, backendSide, splice: sp } = await rig((s) => {
      let i = 0;
      const pump = () => {
        while (i < CHUNKS) {
          const b = pattern(i++, CHUNK);
          sent.update(b);
          written += b.length;
          if (!s.write(b)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    }, 60_000, shared);
    client.pause();
    // Wait until the backend writer has stalled (no progress across several polls).
    let last = -1;
    let still = 0;
    while (still < 5) {
      await new Promise((r) => setTimeout(r, 50));
      still = written === last ? still + 1 : 0;
      last = written;
    }
    expect(written).toBeLessThan((CHUNKS * CHUNK) / 2);
    // What the proxy holds for the client is bounded by one socket buffer plus a chunk.
    expect(clientSide.writableLength).toBeLessThanOrEqual(1024 * 1024);
    expect(backendSide.isPaused()).toBe(true);

    const got = createHash('sha256');
    let received = 0;
    client.on('data', (d: Buffer) => {
      got.update(d);
      received += d.length;
    });
    client.resume();
    await new Promise((r) => client.once('end', r));
    expect(received).toBe(CHUNKS * CHUNK);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    client.end();
    const stats = await sp.done;
    expect(stats.bytesOut).toBe(CHUNKS * CHUNK);
  });

  it('passes a half-close on and keeps the other direction open', async () => {
    const { client, splice: sp } = await rig((s) => {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => {
        s.end(`heard ${got}`);
      });
    }, 60_000, shared);
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    client.end('hello');
    await new Promise((r) => client.once('end', r));
    expect(reply).toBe('heard hello');
    const stats = await sp.done;
    expect(stats).toMatchObject({ bytesIn: 5, bytesOut: 11 });
  });

  it('ends a session idle past its deadline and says so', async () => {
    const { client, splice: sp } = await rig(() => undefined, 150, shared);
    const ended = new Promise((r) => client.once('end', r));
    client.resume();
    const stats = await sp.done;
    expect(stats.endedBy).toBe('idle');
    await ended; // the client saw the proxy hang up
  });

  it('says which side ended it', async () => {
    const { client, splice: sp } = await rig((s) => s.end('bye\r\n'), 60_000, shared);
    client.on('end', () => client.end()); // as mail clients do when the server hangs up
    client.resume();
    const stats = await sp.done;
    expect(stats.endedBy).toBe('backend');
    expect(stats.bytesOut).toBe(5);
  });

  it('keeps the bytes of sessions read at the same time apart, with slow readers', async () => {
    const SIZE = 8 * 1024 * 1024;
    let next = 0;
    // Each backend connection sends its own pattern; the clients read in bursts with pauses,
    // so writes to them are left pending while the other session's reads go on.
    const { clients, spliced } = await rig((s) => {
      const b = pattern(1 + next++, SIZE);
      s.end(b);
    }, 60_000, shared, 3);
    const sums = await Promise.all(
      clients.map(
        (c) =>
          new Promise<{ n: number; sum: string }>((resolve) => {
            const h = createHash('sha256');
            let n = 0;
            c.on('data', (d: Buffer) => {
              h.update(d);
              n += d.length;
              if (n % 7 === 0) {
                c.pause();
                setImmediate(() => c.resume());
              }
            });
            c.on('end', () => {
              c.end();
              resolve({ n, sum: h.digest('hex') });
            });
          }),
      ),
    );
    const expected = [1, 2, 3].map((i) => createHash('sha256').update(pattern(i, SIZE)).digest('hex'));
    expect(sums.map((x) => x.n)).toEqual([SIZE, SIZE, SIZE]);
    // Which client met which backend connection is the accept order's: compare as sets.
    expect(sums.map((x) => x.sum).sort()).toEqual([...expected].sort());
    for (const x of spliced) expect((await x.splice.done).bytesOut).toBe(SIZE);
  });
});

describe('the shared read buffer before a splice', () => {
  it("emits each read as a 'data' chunk of its own, unchanged by later reads", async () => {
    const chunks: Buffer[] = [];
    const port = await listen((s) => {
      s.write('first line\r\n');
      setTimeout(() => s.end('second line\r\n'), 20);
    });
    const reads = new SharedReads();
    const sock = net.connect({ port, host: '127.0.0.1', onread: reads.options });
    reads.attach(sock);
    sock.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => sock.once('end', r));
    expect(Buffer.concat(chunks).toString()).toBe('first line\r\nsecond line\r\n');
    expect(chunks[0]!.toString()).toBe('first line\r\n');
    sock.destroy();
  });
});
