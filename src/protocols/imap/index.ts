// The IMAP protocol descriptor: the client side only (the backend replay is bound in
// src/registry.ts).
import type { MailProtocol } from '../protocol.js';
import { ImapMachine } from './machine.js';

export const imap: MailProtocol = {
  name: 'imap',
  createMachine: (opts) => new ImapMachine(opts),
};
