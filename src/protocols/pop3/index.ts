// The POP3 protocol descriptor: the pure pre-login machine and the backend login replay.
import { pop3BackendLogin, pop3ProbeCapabilities } from '../../backend/login-pop3.js';
import type { MailProtocol } from '../protocol.js';
import { Pop3Machine } from './machine.js';

export const pop3: MailProtocol = {
  name: 'pop3',
  createMachine: (opts) => new Pop3Machine(opts),
  backendLogin: pop3BackendLogin,
  probeCapabilities: pop3ProbeCapabilities,
};
