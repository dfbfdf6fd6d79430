// The SMTP protocol descriptor: the client side only (the backend replay is bound in
// src/registry.ts).
import type { MailProtocol } from '../protocol.js';
import { SmtpMachine } from './machine.js';

export const smtp: MailProtocol = {
  name: 'smtp',
  createMachine: (opts) => new SmtpMachine(opts),
};
