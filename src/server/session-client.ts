// Who a session's client is, and the session's child logger that names it. The logger is made
// at its first line rather than at connect: most pre-auth connections never write one, and a
// child's bindings cost about 0.7 KiB each (issue 22).
import type { Socket } from 'node:net';
import { canonicalIp, isPlainIpv4, parseHostPort } from '../config/address.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { ClientAddress } from '../backend/types.js';

/** The local end of every connection a listener accepts, when its `listen` names it: a literal
 *  IPv4 address other than 0.0.0.0, and a port other than 0 (worker mode pins port 0 to the
 *  real one). Null: asked of each socket. Kept per listener config (one per binding). */
const boundEnds = new WeakMap<ListenerConfig, { ip: string; port: number } | null>();

function boundEnd(listener: ListenerConfig): { ip: string; port: number } | null {
  let end = boundEnds.get(listener);
  if (end === undefined) {
    const hp = parseHostPort(listener.listen);
    end = hp && hp.port !== 0 && hp.host !== '0.0.0.0' && isPlainIpv4(hp.host) ? { ip: hp.host, port: hp.port } : null;
    boundEnds.set(listener, end);
  }
  return end;
}

/** The accepted socket's two ends, until a PROXY header says otherwise. A listener on one
 *  IPv4 address gives the local end without asking the socket (getsockname: ~2.3 µs a
 *  connection, issue 22). */
export function clientAddress(raw: Socket, sessionId: string, listener?: ListenerConfig): ClientAddress {
  const local = listener && boundEnd(listener);
  return {
    ip: canonicalIp(raw.remoteAddress) ?? raw.remoteAddress ?? '',
    port: raw.remotePort ?? 0,
    localIp: local ? local.ip : (canonicalIp(raw.localAddress) ?? raw.localAddress ?? ''),
    localPort: local ? local.port : (raw.localPort ?? 0),
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
