// The POP3 protocol descriptor: the client side only (the backend replay is bound in
// src/registry.ts).
import type { MailProtocol } from '../protocol.js';
import { Pop3Machine } from './machine.js';

export const pop3: MailProtocol = {
  name: 'pop3',
  createMachine: (opts) => new Pop3Machine(opts),
};
