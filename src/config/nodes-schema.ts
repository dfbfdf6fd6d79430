// nodes: how often an instance tells the others it is alive (stores/node-registry.ts, the
// admin API's GET /api/v1/nodes and the console's Nodes panel). Pure.
import { z } from 'zod';
import { duration } from './fields.js';

/** Beats faster than this would write to Redis for nothing an operator can see. */
const MIN_BEAT_MS = 100;
/** A beat slower than a minute leaves a dead node listed for 3 minutes. */
const MAX_BEAT_MS = 60_000;

export const nodes = z
  .strictObject({
    beat: duration('How often this instance writes its record (host, pid, version, workers, sessions, connections, store and attack-mode state); a record is kept 3 beats, so a node that stops beating leaves the list within 3 beats. Read at start.', MAX_BEAT_MS)
      .refine((ms) => ms >= MIN_BEAT_MS, `expected at least ${MIN_BEAT_MS}ms`)
      .prefault('5s'),
  })
  .prefault({})
  .describe('The nodes list (GET /api/v1/nodes, the console): with the Redis store every instance sharing it; with the memory store this process (and its workers). A record holds no token, user name or client address.');

export type NodesConfig = z.output<typeof nodes>;
