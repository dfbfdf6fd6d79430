// The splice over real loopback sockets: bytes unchanged both ways, a client that stops
// reading stops the backend (bounded memory), half-close passed on, idle sessions ended.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { splice, type Splice } from '../../src/backend/splice.js';

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
async function rig(backend: (s: net.Socket) => void, idleMs = 60_000) {
  const backendPort = await listen(backend);
  const spliced: { splice: Splice; clientSide: net.Socket; backendSide: net.Socket }[] = [];
  const proxyPort = await listen((clientSide) => {
    clientSide.pause();
    const backendSide = net.connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true }, () => {
      spliced.push({ splice: splice(clientSide, backendSide, idleMs), clientSide, backendSide });
    });
  });
  const client = await new Promise<net.Socket>((r) => {
    const c = net.connect({ port: proxyPort, host: '127.0.0.1', allowHalfOpen: true }, () => r(c));
  });
  while (spliced.length === 0) await new Promise((r) => setTimeout(r, 5));
  return { client, ...spliced[0]! };
}

function pattern(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j += 4) b.writeUInt32BE((i * size + j) >>> 0, j);
  return b;
}

describe('splice', () => {
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
    });
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
    });
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    client.end('hello');
    await new Promise((r) => client.once('end', r));
    expect(reply).toBe('heard hello');
    const stats = await sp.done;
    expect(stats).toMatchObject({ bytesIn: 5, bytesOut: 11 });
  });

  it('ends a session idle past its deadline and says so', async () => {
    const { client, splice: sp } = await rig(() => undefined, 150);
    const ended = new Promise((r) => client.once('end', r));
    client.resume();
    const stats = await sp.done;
    expect(stats.endedBy).toBe('idle');
    await ended; // the client saw the proxy hang up
  });

  it('says which side ended it', async () => {
    const { client, splice: sp } = await rig((s) => s.end('bye\r\n'));
    client.on('end', () => client.end()); // as mail clients do when the server hangs up
    client.resume();
    const stats = await sp.done;
    expect(stats.endedBy).toBe('backend');
    expect(stats.bytesOut).toBe(5);
  });
});
