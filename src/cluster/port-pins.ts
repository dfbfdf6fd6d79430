// Listeners configured on port 0 (tests, a quick try) in worker mode: each worker binding port 0
// would get a port of its own. The primary binds port 0 once with SO_REUSEPORT, passes the
// port the kernel chose to every worker in their config, and closes its own socket once they
// listen (it never accepts; nobody knows the port before the workers log it). A pin holds
// across reloads and restarts while the listener's `listen` stays the same.
import net from 'node:net';
import { parseHostPort } from '../config/address.js';
import type { Config } from '../config/schema.js';

export class PortPins {
  private readonly pins = new Map<string, { listen: string; port: number }>();
  private readonly held: net.Server[] = [];

  /** The config the workers get: each port-0 listener on its pinned port. */
  async apply(cfg: Config): Promise<Config> {
    const listeners = [];
    for (const l of cfg.listeners) {
      const hp = parseHostPort(l.listen);
      if (!hp || hp.port !== 0) {
        listeners.push(l);
        continue;
      }
      let pin = this.pins.get(l.name);
      if (pin?.listen !== l.listen) {
        pin = { listen: l.listen, port: await this.reserve(hp.host) };
        this.pins.set(l.name, pin);
      }
      listeners.push({ ...l, listen: l.listen.replace(/:0$/, `:${pin.port}`) });
    }
    return { ...cfg, listeners };
  }

  /** The workers listen now: the reservations go (their queues are empty, see above). */
  async release(): Promise<void> {
    await Promise.all(this.held.splice(0).map((s) => new Promise((r) => s.close(r))));
  }

  private async reserve(host: string): Promise<number> {
    const s = net.createServer((c) => c.destroy());
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ host, port: 0, reusePort: true, backlog: 1 }, () => resolve());
    });
    this.held.push(s);
    return (s.address() as net.AddressInfo).port;
  }
}
