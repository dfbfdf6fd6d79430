// The SMTP submission protocol descriptor.
import { smtpBackendLogin, smtpProbeCapabilities } from '../../backend/login-smtp.js';
import type { MailProtocol } from '../protocol.js';
import { SmtpMachine } from './machine.js';

export const smtp: MailProtocol = {
  name: 'smtp',
  createMachine: (opts) => new SmtpMachine(opts),
  backendLogin: smtpBackendLogin,
  probeCapabilities: smtpProbeCapabilities,
};
