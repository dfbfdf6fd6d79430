// Drives a protocol machine with a script of client bytes and session calls, once as one
// chunk per step and once byte by byte, and checks both runs give the same effects.
// Shared by the IMAP, POP3 and SMTP machine tests. Pure: no sockets.
import { expect } from 'vitest';
import type { Effect, LoginResult, MachineOptions, MailProtocol, ProtocolMachine } from '../../src/protocols/protocol.js';

/** A step of a script: bytes from the client, or a call the session would make. */
export type Step = string | ((m: ProtocolMachine) => Effect[]);
export const tls: Step = (m) => m.tlsStarted();
export const result = (r: LoginResult): Step => (m) => m.loginResult(r);
export const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');

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
