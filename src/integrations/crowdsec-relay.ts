// CrowdSec in worker mode: the LAPI keeps one stream position per bouncer key, so N workers
// pulling with one key would each miss the deltas another took. The primary pulls alone and
// relays its decision set over the IPC link (the full set to a worker before it starts, then
// every change); each worker answers refuses() from its own copy, without a round trip.
import type { Clock } from '../clock.js';
import type { CrowdsecBouncer } from './crowdsec-bouncer.js';
import { DecisionSet, type CsDelta, type CsRefusal } from './crowdsec-decisions.js';

/** Decisions per IPC note: a full set of a large list goes in pieces, not one huge message. */
export const RELAY_CHUNK = 10_000;

interface Link {
  notify(op: 'crowdsec', delta: CsDelta): void;
}

/** The primary's side: every change to every worker; `welcome` gives one worker the full set. */
export function relayDecisions(bouncer: CrowdsecBouncer, everyone: () => readonly { link: Link }[]): { welcome(link: Link): void } {
  bouncer.onChange((d) => {
    for (const part of chunks(d)) for (const h of everyone()) h.link.notify('crowdsec', part);
  });
  return { welcome: (link) => chunks({ reset: true, add: bouncer.decisions.all(), remove: [] }).forEach((part) => link.notify('crowdsec', part)) };
}

function chunks(d: CsDelta): CsDelta[] {
  if (d.add.length <= RELAY_CHUNK) return [d];
  const out: CsDelta[] = [];
  for (let i = 0; i < d.add.length; i += RELAY_CHUNK) out.push({ reset: i === 0 && d.reset, add: d.add.slice(i, i + RELAY_CHUNK), remove: i === 0 ? d.remove : [] });
  return out;
}

/** A worker's copy, fed by the primary's notes. */
export class DecisionReplica {
  private readonly decisions: DecisionSet;

  constructor(clock: Clock) {
    this.decisions = new DecisionSet(clock);
  }

  apply(d: CsDelta): void {
    this.decisions.apply(d);
  }

  refuses(ip: string): CsRefusal | null {
    try {
      return this.decisions.refuses(ip);
    } catch {
      return null;
    }
  }
}
