// Which protocols exist, and what serves each: the client-side machine (protocols/) and the
// replay toward the backend (backend/). The only place that binds the two layers.
import { imapReplay } from './backend/login-imap.js';
import { pop3Replay } from './backend/login-pop3.js';
import { smtpReplay } from './backend/login-smtp.js';
import type { Target } from './backend/capabilities.js';
import { serverTarget } from './backend/pool.js';
import type { BackendReplay } from './backend/types.js';
import type { Config, ProtocolName } from './config/schema.js';
import { imap } from './protocols/imap/index.js';
import { pop3 } from './protocols/pop3/index.js';
import type { MailProtocol } from './protocols/protocol.js';
import { smtp } from './protocols/smtp/index.js';

export interface ProtocolBinding {
  protocol: MailProtocol;
  replay: BackendReplay;
}

export const PROTOCOLS: Readonly<Record<ProtocolName, ProtocolBinding>> = {
  imap: { protocol: imap, replay: imapReplay },
  pop3: { protocol: pop3, replay: pop3Replay },
  smtp: { protocol: smtp, replay: smtpReplay },
};

/** The servers whose capabilities are probed: each listened-to backend's first, with the
 *  replay of the protocol its listener speaks. */
export function probeTargets(cfg: Config): Target[] {
  const seen = new Map<string, Target>();
  for (const l of cfg.listeners) {
    const b = cfg.backends[l.backend]!;
    if (!seen.has(l.backend)) seen.set(l.backend, { backend: l.backend, server: serverTarget(b, b.servers[0]!), probeInterval: b.probeInterval, replay: PROTOCOLS[l.protocol].replay, hostname: l.hostname });
  }
  return [...seen.values()];
}
