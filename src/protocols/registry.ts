// Protocol descriptors by name: the only place that knows which protocols exist.
import type { ProtocolName } from '../config/schema.js';
import { imap } from './imap/index.js';
import { pop3 } from './pop3/index.js';
import { smtp } from './smtp/index.js';
import type { MailProtocol } from './protocol.js';

const PROTOCOLS: Partial<Record<ProtocolName, MailProtocol>> = {
  imap,
  pop3,
  smtp,
};

export function protocolFor(name: ProtocolName): MailProtocol | undefined {
  return PROTOCOLS[name];
}
