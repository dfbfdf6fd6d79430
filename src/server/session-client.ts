// Who a session's client is, and the session's child logger that names it. The logger is made
// at its first line rather than at connect: most pre-auth connections never write one, and a
// child's bindings cost about 0.7 KiB each (issue 22).
import type { Socket } from 'node:net';
import { canonicalIp } from '../config/address.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { ClientAddress } from '../backend/types.js';

/** The accepted socket's two ends, until a PROXY header says otherwise. */
export function clientAddress(raw: Socket, sessionId: string): ClientAddress {
  return {
    ip: canonicalIp(raw.remoteAddress) ?? raw.remoteAddress ?? '',
    port: raw.remotePort ?? 0,
    localIp: canonicalIp(raw.localAddress) ?? raw.localAddress ?? '',
    localPort: raw.localPort ?? 0,
    sessionId,
  };
}

/** What the PROXY header said, once read: the balancer's address and the header's version. */
export interface Proxied {
  proxy: string;
  proxyHeader: string;
}

/** Behind a load balancer the client is known only from the header: until then the logs name
 *  the balancer as `proxy`, never as the client. */
export function sessionLogger(parent: Logger, listener: ListenerConfig, client: ClientAddress, proxied: Proxied | null): Logger {
  const { ip, port, sessionId } = client;
  const who = proxied ? { proxy: proxied.proxy, ip, port, proxyHeader: proxied.proxyHeader } : listener.proxyProtocol ? { proxy: ip } : { ip, port };
  return parent.child({ session: sessionId, listener: listener.name, protocol: listener.protocol, ...who });
}
