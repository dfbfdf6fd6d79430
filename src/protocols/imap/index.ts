// The IMAP protocol descriptor.
import { imapBackendLogin, imapProbeCapabilities } from '../../backend/login-imap.js';
import type { MailProtocol } from '../protocol.js';
import { ImapMachine } from './machine.js';

export const imap: MailProtocol = {
  name: 'imap',
  createMachine: (opts) => new ImapMachine(opts),
  backendLogin: imapBackendLogin,
  probeCapabilities: imapProbeCapabilities,
};
