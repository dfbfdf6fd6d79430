// Unit tests for the per-turn budget every pre-auth machine shares (PreauthMachine.limitTurns,
// issue 15), for IMAP, POP3 and SMTP: at most N commands or answers per call, the rest pending
// until resume(); the batches add up to exactly what one unbounded call answers, as one chunk
// and byte by byte (machine-driver). Pure: no sockets.
import { describe, expect, it } from 'vitest';
import { PREAUTH_COMMANDS_PER_TURN } from '../../src/bounds.js';
import { imap } from '../../src/protocols/imap/index.js';
import { pop3 } from '../../src/protocols/pop3/index.js';
import type { Effect, MailProtocol, ProtocolMachine } from '../../src/protocols/protocol.js';
import { smtp } from '../../src/protocols/smtp/index.js';
import { b64 } from '../helpers/codec.js';
import { machineDriver, normalise, result, type Step } from '../helpers/machine-driver.js';

/** Logins allowed in the clear, so that login commands run without TLS. */
const CLEAR = { tlsMode: 'none' as const, requireTls: false };

interface Case {
  protocol: MailProtocol;
  /** A cheap command, one reply each. */
  cheap: string;
  /** A complete login that the backend will refuse. */
  login: string;
  /** A SASL PLAIN exchange: the command, then the answer to its challenge. */
  sasl: [string, string];
  logout: string;
  startTls: string;
}

const PLAIN = b64('\0alice\0secret');
const CASES: Record<string, Case> = {
  imap: { protocol: imap, cheap: 'a CAPABILITY\r\n', login: 'l LOGIN alice secret\r\n', sasl: ['s AUTHENTICATE PLAIN\r\n', `${PLAIN}\r\n`], logout: 'z LOGOUT\r\n', startTls: 't STARTTLS\r\n' },
  pop3: { protocol: pop3, cheap: 'CAPA\r\n', login: 'USER alice\r\nPASS secret\r\n', sasl: ['AUTH PLAIN\r\n', `${PLAIN}\r\n`], logout: 'QUIT\r\n', startTls: 'STLS\r\n' },
  smtp: { protocol: smtp, cheap: 'EHLO c\r\n', login: `EHLO c\r\nAUTH PLAIN ${PLAIN}\r\n`, sasl: ['EHLO c\r\nAUTH PLAIN\r\n', `${PLAIN}\r\n`], logout: 'QUIT\r\n', startTls: 'EHLO c\r\nSTARTTLS\r\n' },
};

const limit =
  (events: number): Step =>
  (m) => {
    m.limitTurns(events);
    return [];
  };

/** What the session does between turns: resume() while the machine says more is pending. */
const drain: Step = (m) => {
  const out: Effect[] = [];
  while (m.pending) out.push(...m.resume());
  return out;
};

const sends = (effects: Effect[]) => effects.filter((e) => e.type === 'send').length;
const push = (m: ProtocolMachine, text: string) => m.push(Buffer.from(text, 'latin1'));

describe.each(Object.entries(CASES))('%s machine: the turn budget', (_, c) => {
  const { opts, drive } = machineDriver(c.protocol, CLEAR);

  it('unbounded until limitTurns: 40 pipelined commands in one read are all answered', () => {
    const m = c.protocol.createMachine(opts());
    expect(sends(push(m, c.cheap.repeat(40)))).toBe(40);
    expect(m.pending).toBe(false);
  });

  it('a budget of 3: a read of 10 commands is answered 3, 3, 3, 1, pending until the last', () => {
    const m = c.protocol.createMachine(opts());
    m.limitTurns(3);
    expect(sends(push(m, c.cheap.repeat(10)))).toBe(3);
    const batches: [number, boolean][] = [[3, m.pending]];
    while (m.pending) batches.push([sends(m.resume()), m.pending]);
    expect(batches).toEqual([
      [3, true],
      [3, true],
      [3, true],
      [1, false],
    ]);
    expect(m.bufferedBytes).toBe(0);
  });

  it('whole and byte by byte, the batches add up to what one unbounded call answers', () => {
    const bounded = drive({}, [limit(3), c.cheap.repeat(10), drain]);
    expect(normalise(bounded.effects)).toEqual(normalise(drive({}, [c.cheap.repeat(10)]).effects));
  });

  it('commands pipelined behind a refused login come in batches after the verdict', () => {
    const refused = result({ kind: 'rejected', reply: null });
    const script = (budget: Step[]) => [...budget, c.login + c.cheap.repeat(7), refused, drain];
    const bounded = drive({}, script([limit(2)]));
    expect(normalise(bounded.effects)).toEqual(normalise(drive({}, script([])).effects));
    expect(bounded.logins).toHaveLength(1);
    const m = c.protocol.createMachine(opts());
    m.limitTurns(2);
    push(m, c.login + c.cheap.repeat(7));
    const answered = m.loginResult({ kind: 'rejected', reply: null });
    // The verdict, then two of the pipelined commands; the other five wait.
    expect(sends(answered)).toBe(3);
    expect(m.pending).toBe(true);
  });

  it('an answer to a SASL challenge counts as one event of the budget', () => {
    const m = c.protocol.createMachine(opts());
    m.limitTurns(1);
    const [command, answer] = c.sasl;
    const first = push(m, command + answer);
    expect(first.filter((e) => e.type === 'login')).toEqual([]);
    expect(m.pending).toBe(true);
    const rest = drain(m);
    expect(rest.filter((e) => e.type === 'login')).toHaveLength(1);
    expect(normalise([...first, ...rest])).toEqual(normalise(drive({}, [command + answer]).effects));
  });

  it('nothing is pending once the machine closed or started TLS, whatever the read held', () => {
    const closed = c.protocol.createMachine(opts());
    closed.limitTurns(2);
    expect(push(closed, c.logout + c.cheap.repeat(5)).at(-1)).toEqual({ type: 'close', reason: 'logout' });
    expect(closed.pending).toBe(false);
    expect(closed.resume()).toEqual([]);
    const tls = c.protocol.createMachine(opts({ tlsMode: 'starttls' }));
    tls.limitTurns(3);
    expect(push(tls, c.startTls + c.cheap.repeat(5)).at(-1)).toMatchObject({ type: 'startTls' });
    expect(tls.pending).toBe(false);
  });

  it(`at the session's budget one 64 KiB read of cheap commands is answered ${PREAUTH_COMMANDS_PER_TURN} at a time`, () => {
    const m = c.protocol.createMachine(opts());
    m.limitTurns(PREAUTH_COMMANDS_PER_TURN);
    const read = c.cheap.repeat(Math.floor(65536 / c.cheap.length));
    expect(sends(push(m, read))).toBe(PREAUTH_COMMANDS_PER_TURN);
    expect(m.pending).toBe(true);
    expect(m.bufferedBytes).toBe(read.length - PREAUTH_COMMANDS_PER_TURN * c.cheap.length);
    expect(sends(m.resume())).toBe(PREAUTH_COMMANDS_PER_TURN);
  });
});
