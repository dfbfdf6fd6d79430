// Worker mode's port-0 listeners (src/cluster/port-pins.ts): the primary reserves one real port
// with SO_REUSEPORT and every worker binds it beside the reservation.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PortPins } from '../../src/cluster/port-pins.js';
import { parseConfig } from '../../src/config/load.js';

const listener = (name: string, listen: string) => ({ name, protocol: 'imap', listen, tls: 'none', backend: 'b' });
const cfg = (...listeners: ReturnType<typeof listener>[]) => parseConfig({ listeners, backends: { b: { host: '127.0.0.1', port: 1 } } }, {});

describe('PortPins', () => {
  const pins = new PortPins();
  afterEach(() => pins.release());

  it('gives a port-0 listener one real port, kept while its listen value stays; other listeners are untouched', async () => {
    const c = cfg(listener('imap', '127.0.0.1:0'), listener('fixed', '127.0.0.1:1143'));
    const first = await pins.apply(c);
    const port = Number(/:(\d+)$/.exec(first.listeners[0]!.listen)![1]);
    expect(port).toBeGreaterThan(0);
    expect(first.listeners[1]!.listen).toBe('127.0.0.1:1143');
    // Workers can bind the pinned port beside the primary's reservation (SO_REUSEPORT).
    const worker = net.createServer();
    await new Promise<void>((r) => worker.listen({ host: '127.0.0.1', port, reusePort: true }, () => r()));
    worker.close();
    expect((await pins.apply(c)).listeners[0]!.listen).toBe(`127.0.0.1:${port}`);
  });

  it('a listener whose listen value changed gets a port of its own again', async () => {
    const a = await pins.apply(cfg(listener('imap', '127.0.0.1:0')));
    const b = await pins.apply(cfg(listener('imap', 'localhost:0')));
    expect(a.listeners[0]!.listen).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    expect(b.listeners[0]!.listen).toMatch(/^localhost:[1-9]\d*$/);
  });
});
