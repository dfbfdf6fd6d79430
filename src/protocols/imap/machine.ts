// IMAP pre-auth state machine: parser events in, effects out (RFC 9051 §6.1–6.2).
// Pure: no sockets, no timers; the session runs the effects it returns. States, the command
// dispatcher, TLS, SASL, the verdict and the error budget are PreauthMachine's, shared with
// POP3 and SMTP; this file holds IMAP's command table and how its parser's events map to them.
import { SASL_MAX_TOKEN_BYTES } from '../../bounds.js';
import { PreauthMachine, send, type CommandTable } from '../preauth-machine.js';
import type { Effect, MachineLoginContext, MachineOptions } from '../protocol.js';
import { ImapParser, type ImapArg } from './parser.js';
import { backendMechanisms, capabilities, literalMinus, R, REPLIES } from './replies.js';
import { perList } from '../per-list.js';

const literalMinusOf = perList(literalMinus);
const mechanismsOf = perList(backendMechanisms);

/** The client's ID name kept (RFC 2971 §3.3 allows 1024 octets a value): a name, not a text. */
const ID_NAME_CHARS = 64;

/** A user name or password (RFC 9051 §4.3 astring): an atom or a string, never a list. */
function astring(arg: ImapArg | undefined): Buffer | null {
  if (arg?.kind === 'string') return arg.value;
  if (arg?.kind === 'atom') return Buffer.from(arg.value, 'latin1');
  return null;
}

export class ImapMachine extends PreauthMachine {
  private static readonly COMMANDS = {
    CAPABILITY: { args: 0, usage: 'CAPABILITY takes no arguments', run: (m, tag) => [send(R.capability(tag, m.caps()))] },
    NOOP: { args: 0, usage: 'NOOP takes no arguments', run: (_, tag) => [send(R.ok(tag, 'NOOP'))] },
    LOGOUT: { run: (m, tag) => m.close(R.logout(tag), 'logout') },
    // RFC 2971: answered locally; the client's fields are never believed or forwarded.
    ID: {
      args: [1, 1],
      usage: 'Invalid ID arguments',
      run: (m, tag, [fields]) => (fields!.kind === 'list' ? m.noteId(tag, fields!.items) : fields!.kind === 'atom' && fields!.value.toUpperCase() === 'NIL' ? [send(R.id(tag))] : null),
    },
    STARTTLS: { args: 0, usage: 'STARTTLS takes no arguments', run: (m, tag) => m.startTls(tag) },
    LOGIN: { needsTls: true, args: [2, 2], usage: 'LOGIN expects user name and password', run: (m, tag, [user, password]) => m.login(tag, astring(user), astring(password)) },
    AUTHENTICATE: {
      needsTls: true,
      args: [1, 2],
      usage: 'AUTHENTICATE expects a mechanism and an optional initial response',
      run: (m, tag, [mechanism, initial]) => m.authenticate(tag, mechanism!, initial),
    },
  } satisfies CommandTable<ImapMachine, ImapArg[]>;

  private readonly parser: ImapParser;
  private clientName: string | undefined;

  constructor(opts: MachineOptions) {
    // The literal form is fixed for the session (a snapshot of the backend's list).
    const parser = new ImapParser({ literalMinus: literalMinusOf(opts.backendCapabilities) });
    super(opts, parser, REPLIES, mechanismsOf(opts.backendCapabilities));
    this.parser = parser;
  }

  start(): Effect[] {
    return [send(R.greeting(this.caps()))];
  }

  protected step(): Effect[] | null {
    const ev = this.parser.next();
    if (!ev) return null;
    switch (ev.type) {
      case 'continue': {
        // Before TLS a login is refused anyway: say so instead of "+", so the client never
        // sends its password in the clear.
        const refused = this.refuseBeforeTls(ImapMachine.COMMANDS, ev.verb, ev.tag);
        if (!refused) return [send(R.continueLiteral)];
        this.parser.refuseLiteral();
        return refused;
      }
      case 'bad':
        if (ev.code === 'TOOBIG') return this.close(R.bad(ev.tag, `[TOOBIG] ${ev.text}`) + R.byeTooBig, 'protocol-error');
        return ev.fatal ? this.close(R.bad(ev.tag, ev.text) + R.byeErrors, 'protocol-error') : this.countBad(R.bad(ev.tag, ev.text));
      case 'line':
        return this.answer(ev.text);
      case 'command':
        return this.dispatch(ImapMachine.COMMANDS, ev.verb, ev.tag, ev.args);
    }
  }

  /** A SASL response line may be longer than a command line (RFC 4954 §4's 12,288 octets). */
  protected expectSaslLine(): void {
    this.parser.expectLine(SASL_MAX_TOKEN_BYTES);
  }

  private caps(): string {
    return capabilities({ secure: this.secure, tlsMode: this.opts.tlsMode, requireTls: this.opts.requireTls, backend: this.opts.backendCapabilities, mechanisms: this.mechanisms });
  }

  /** The client's "name" field (RFC 2971 §3.3), kept for the login history, then answered. */
  private noteId(tag: string, fields: ImapArg[]): Effect[] {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const [key, value] = [astring(fields[i]), astring(fields[i + 1])];
      if (key?.toString('latin1').toLowerCase() !== 'name' || fields[i + 1]!.kind !== 'string' || !value) continue;
      const name = value.toString('latin1').replace(/[^\x20-\x7b\x7d\x7e]/g, '').trim().slice(0, ID_NAME_CHARS);
      this.clientName = name || undefined;
    }
    return [send(R.id(tag))];
  }

  protected override loginContext(tag: string): MachineLoginContext {
    return this.clientName === undefined ? { tag } : { tag, clientName: this.clientName };
  }

  private login(tag: string, user: Buffer | null, password: Buffer | null): Effect[] | null {
    return user && password ? this.beginLogin(tag, { mechanism: 'IMAP-LOGIN', user, password }) : null;
  }

  /** The mechanism and a SASL-IR initial response (RFC 4959) are atoms, never strings. */
  private authenticate(tag: string, mechanism: ImapArg, initial: ImapArg | undefined): Effect[] | null {
    if (mechanism.kind !== 'atom' || (initial && initial.kind !== 'atom')) return null;
    return this.startSasl(tag, mechanism.value, initial?.kind === 'atom' ? initial.value : null);
  }
}
