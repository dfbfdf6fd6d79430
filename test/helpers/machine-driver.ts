// Drives a protocol machine with a script of client bytes and session calls, once as one
// chunk per step and once byte by byte, and checks both runs give the same effects.
// Shared by the IMAP, POP3 and SMTP machine tests. Pure: no sockets.
import { expect } from 'vitest';
import type { Effect, LoginResult, MachineOptions, MailProtocol, ProtocolMachine } from '../../src/protocols/protocol.js';
import type { Credentials } from '../../src/protocols/sasl.js';

/** A step of a script: bytes from the client, or a call the session would make. */
export type Step = string | ((m: ProtocolMachine) => Effect[]);
export const tls: Step = (m) => m.tlsStarted();
export const result = (r: LoginResult): Step => (m) => m.loginResult(r);

export const DEFAULT_OPTIONS: MachineOptions = {
  tlsMode: 'starttls',
  requireTls: true,
  maxBadCommands: 10,
  maxAuthAttempts: 3,
  hostname: 'mx.example.org',
  backendCapabilities: [],
};

/** Byte by byte nothing is buffered yet when STARTTLS is parsed, so only that count differs. */
export const normalise = (effects: Effect[]) =>
  effects.map((e) => (e.type === 'startTls' ? { type: 'startTls' } : e.type === 'send' ? { type: 'send', data: Buffer.from(e.data).toString('latin1') } : e));

export function machineDriver(protocol: MailProtocol, defaults: Partial<MachineOptions> = {}) {
  const opts = (o: Partial<MachineOptions> = {}): MachineOptions => ({ ...DEFAULT_OPTIONS, ...defaults, ...o });

  /** Runs a script; `greet` includes the greeting effects. */
  function run(o: MachineOptions, steps: Step[], bytewise: boolean, greet = false): Effect[] {
    const m = protocol.createMachine(o);
    const out: Effect[] = greet ? [...m.start()] : [];
    for (const step of steps) {
      if (typeof step === 'function') out.push(...step(m));
      else if (!bytewise) out.push(...m.push(Buffer.from(step, 'latin1')));
      else {
        const buf = Buffer.from(step, 'latin1');
        for (let i = 0; i < buf.length; i++) out.push(...m.push(buf.subarray(i, i + 1)));
      }
    }
    return out;
  }

  /** Runs the script both ways, asserts the same effects, returns the one-chunk run. */
  function drive(o: Partial<MachineOptions>, steps: Step[], greet = false) {
    const effects = run(opts(o), steps, false, greet);
    expect(normalise(run(opts(o), steps, true, greet))).toEqual(normalise(effects));
    const text = effects.flatMap((e) => (e.type === 'send' ? [Buffer.from(e.data).toString('latin1')] : [])).join('');
    return {
      effects,
      text,
      lines: text.split('\r\n').slice(0, -1),
      logins: effects.flatMap((e) => (e.type === 'login' ? [e] : [])),
      closes: effects.flatMap((e) => (e.type === 'close' ? [e.reason] : [])),
    };
  }

  return { opts, run, drive };
}

/** Options for a listener already inside TLS (implicit). */
export const secure = { tlsMode: 'implicit' as const };

export const creds = (mechanism: Credentials['mechanism'], user: string, password: string): Credentials => ({
  mechanism,
  user: Buffer.from(user, 'latin1'),
  password: Buffer.from(password, 'latin1'),
});

/** Capability tokens of the (first) IMAP "* CAPABILITY" line. */
export const capsLine = (text: string) => /\* CAPABILITY ([^\r]*)\r\n/.exec(text)?.[1]?.split(' ') ?? [];

/** Capability lines of the (first) POP3 CAPA response. */
export function capaOf(text: string): string[] {
  const m = /\+OK Capability list follows\.\r\n((?:[^\r]*\r\n)*?)\.\r\n/.exec(text);
  if (!m) throw new Error(`no CAPA response in ${JSON.stringify(text)}`);
  return m[1]!.split('\r\n').slice(0, -1);
}
