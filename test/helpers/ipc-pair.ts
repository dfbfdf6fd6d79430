// Two ends of an IPC channel in one process, for unit tests of src/cluster: every message goes
// through JSON (as node:cluster's IPC does) and arrives on a later turn; `stall` holds what one
// side sends (a primary that stopped answering), `cut` drops it (a peer gone).
import type { Port } from '../../src/cluster/channel.js';
import type { Envelope } from '../../src/cluster/protocol.js';

export interface PortPair {
  a: Port;
  b: Port;
  /** Messages from a (or b) are held, not delivered, until released. */
  stall(side: 'a' | 'b', on: boolean): void;
  /** Sends from this side fail from now on, as on a closed channel. */
  cut(side: 'a' | 'b'): void;
  /** Messages sent so far from each side (a mailgate message count, for bounds). */
  sent: { a: number; b: number };
  /** Writes so far from each side (one per event-loop turn that sent anything). */
  writes: { a: number; b: number };
}

export function portPair(): PortPair {
  const handlers: { a: ((m: unknown) => void)[]; b: ((m: unknown) => void)[] } = { a: [], b: [] };
  const stalled: { a: string[] | null; b: string[] | null } = { a: null, b: null };
  const cutOff = { a: false, b: false };
  const sent = { a: 0, b: 0 };
  const writes = { a: 0, b: 0 };
  const deliver = (to: 'a' | 'b', text: string) => setImmediate(() => handlers[to].forEach((h) => h(JSON.parse(text))));
  const port = (from: 'a' | 'b'): Port => {
    const to = from === 'a' ? 'b' : 'a';
    return {
      send(message: Envelope | Envelope[], done) {
        if (cutOff[from]) return done(new Error('IPC channel closed'));
        sent[from] += Array.isArray(message) ? message.length : 1;
        writes[from]++;
        const text = JSON.stringify(message);
        if (stalled[from]) stalled[from]!.push(text);
        else deliver(to, text);
        done(null);
      },
      onMessage: (fn) => void handlers[from].push(fn),
    };
  };
  return {
    a: port('a'),
    b: port('b'),
    stall(side, on) {
      if (on) stalled[side] ??= [];
      else {
        const held = stalled[side] ?? [];
        stalled[side] = null;
        for (const t of held) deliver(side === 'a' ? 'b' : 'a', t);
      }
    },
    cut: (side) => void (cutOff[side] = true),
    sent,
    writes,
  };
}
