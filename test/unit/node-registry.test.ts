// The nodes list (stores/node-registry.ts, admin/nodes.ts) on the in-process board and a manual
// clock: records live NODE_TTL_BEATS beats, a node that stops beating drops out, a clean stop
// leaves at once, a board that cannot be read still lists this node; the metrics text sum.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { metricSum, nodesRoute, startNodes } from '../../src/admin/nodes.js';
import { AttackMode } from '../../src/limits/attack-mode.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { ManualClock } from '../../src/clock.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/logging/logger.js';
import { LocalBoard, NODE_TTL_BEATS, NodeRegistry, type NodeBoard, type NodeFacts, type NodeIdentity } from '../../src/stores/node-registry.js';

const BEAT = 1_000;
const log = createLogger('silent');

const identity = (id: string, host = 'mx1'): NodeIdentity => ({ id, host, pid: 4242, version: '0.1.0', started: '2026-12-01T00:00:00.000Z', admin: true, policyServer: false });

function facts(over: Partial<NodeFacts> = {}): () => Promise<NodeFacts> {
  return async () => ({ workers: [], sessions: 3, connections: 5, store: { type: 'redis', up: true }, attackMode: { active: false, forced: null }, ...over });
}

/** Two nodes writing to one board, as two instances write to one Redis. */
function pair() {
  const clock = new ManualClock();
  const board = new LocalBoard(clock);
  const a = new NodeRegistry(board, identity('a', 'mx1'), facts(), clock, BEAT, log);
  const b = new NodeRegistry(board, identity('b', 'mx2'), facts({ workers: [{ slot: 1, pid: 7 }, { slot: 2, pid: 8 }] }), clock, BEAT, log);
  return { clock, board, a, b };
}

describe('NodeRegistry', () => {
  it('lists every node that beat, this one marked self, with what it said and when', async () => {
    const { a, b, clock } = pair();
    await a.beat();
    await b.beat();
    const { complete, nodes } = await a.list();
    expect(complete).toBe(true);
    expect(nodes.map((n) => [n.id, n.host, n.self])).toEqual([
      ['a', 'mx1', true],
      ['b', 'mx2', false],
    ]);
    expect(nodes[1]).toMatchObject({ pid: 4242, version: '0.1.0', workers: [{ slot: 1, pid: 7 }, { slot: 2, pid: 8 }], sessions: 3, connections: 5, store: { type: 'redis', up: true }, beat: new Date(clock.now()).toISOString() });
  });

  it('a node that stops beating leaves the list after NODE_TTL_BEATS beats, not before', async () => {
    const { a, b, clock } = pair();
    await b.beat();
    for (let i = 0; i < NODE_TTL_BEATS; i++) {
      await a.beat();
      expect((await a.list()).nodes.map((n) => n.id)).toEqual(['a', 'b']);
      clock.advance(BEAT - 1);
    }
    clock.advance(NODE_TTL_BEATS); // b's record is now NODE_TTL_BEATS beats old
    await a.beat();
    expect((await a.list()).nodes.map((n) => n.id)).toEqual(['a']);
    await b.beat(); // beating again: back in the list
    expect((await a.list()).nodes.map((n) => n.id)).toEqual(['a', 'b']);
  });

  it('a clean stop deletes its record at once; no beat writes after it', async () => {
    const { a, b } = pair();
    await a.beat();
    await b.beat();
    const late = b.beat(); // under way as the stop comes
    await b.close();
    await late;
    await b.beat();
    expect((await a.list()).nodes.map((n) => n.id)).toEqual(['a']);
  });

  it('with a board that cannot be read, lists this node alone, marked incomplete', async () => {
    const clock = new ManualClock();
    const local = new LocalBoard(clock);
    let down = false;
    const flaky: NodeBoard = {
      put: (r, ttl) => (down ? Promise.reject(new Error('down')) : local.put(r, ttl)),
      list: () => (down ? Promise.reject(new Error('down')) : local.list()),
      remove: (id) => local.remove(id),
      close: () => local.close(),
    };
    const a = new NodeRegistry(flaky, identity('a'), facts({ store: { type: 'redis', up: false } }), clock, BEAT, log);
    await a.beat();
    down = true;
    await a.beat(); // logged, not thrown
    const list = await a.list();
    expect(list.complete).toBe(false);
    expect(list.nodes.map((n) => [n.id, n.self, n.store.up])).toEqual([['a', true, false]]);
  });

  it('beats at start and again whenever the board becomes writable (Redis connected, or back)', async () => {
    const clock = new ManualClock();
    const local = new LocalBoard(clock);
    let ready = () => {};
    let puts = 0;
    const board: NodeBoard = {
      put: (r, ttl) => (puts++, local.put(r, ttl)),
      list: () => local.list(),
      remove: (id) => local.remove(id),
      close: () => local.close(),
      onReady: (fn) => (ready = fn),
    };
    const a = new NodeRegistry(board, identity('a'), facts(), clock, 60_000, log);
    a.start();
    await a.beat();
    expect(puts).toBe(2); // the start's beat, then this one
    ready();
    await a.beat();
    expect(puts).toBe(4);
    await a.close();
    expect(await local.list()).toEqual([]);
  });

  it('startNodes with the memory store: this process alone, its facts, no secret of the config', async () => {
    const cfg = configSchema.parse({ listeners: [], policyServer: { listen: '127.0.0.1:0' }, admin: { token: 'node-test-admin-token-123' }, limits: { keySecret: 'node-test-key-secret-123' } });
    const clock = new ManualClock();
    const attack = new AttackMode(cfg.limits.attackMode, clock, () => undefined);
    attack.force('on');
    const registry = startNodes({
      initial: cfg,
      store: new MemoryStore(clock),
      clock,
      log,
      attackMode: () => attack,
      metrics: async () => 'mailgate_connections{listener="imap",state="spliced"} 4\n',
      sessions: { list: async () => ({ total: 2 }) },
    });
    await registry.beat();
    const { nodes } = await registry.list();
    await registry.close();
    expect(nodes).toHaveLength(1);
    const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
    expect(nodes[0]).toMatchObject({ self: true, host: os.hostname(), pid: process.pid, version, admin: true, policyServer: true, workers: [], sessions: 2, connections: 4, store: { type: 'memory', up: true }, attackMode: { active: true, forced: 'on' } });
    const text = JSON.stringify(nodes);
    for (const secret of [cfg.admin!.token!, cfg.limits.keySecret!]) expect(text).not.toContain(secret);
    expect(cfg.nodes.beat).toBe(5_000);
    expect((await registry.list()).nodes).toEqual([]); // closed: its record is gone
  });
});

describe('GET /api/v1/nodes and the facts', () => {
  it('sums a metric family over label sets and workers; absent: null', () => {
    const text = ['# TYPE mailgate_connections gauge', 'mailgate_connections{listener="imap",state="preauth"} 2', 'mailgate_connections{listener="imap",state="spliced"} 5', 'mailgate_connections_refused_total{reason="x"} 9', 'mailgate_workers 2'].join('\n');
    expect(metricSum(text, 'mailgate_connections')).toBe(7);
    expect(metricSum(text, 'mailgate_workers')).toBe(2);
    expect(metricSum(text, 'mailgate_sessions')).toBeNull();
  });

  it('answers GET only, 404 without a registry, null for other paths', async () => {
    const list = { list: async () => ({ complete: true, nodes: [] }) };
    expect(await nodesRoute('GET', '/api/v1/nodes', list)).toEqual({ complete: true, nodes: [] });
    expect(await nodesRoute('GET', '/api/v1/sessions', list)).toBeNull();
    await expect(nodesRoute('POST', '/api/v1/nodes', list)).rejects.toMatchObject({ status: 405 });
    await expect(nodesRoute('GET', '/api/v1/nodes', undefined)).rejects.toMatchObject({ status: 404 });
  });

  it('the beat must be at least 100ms and at most a minute', () => {
    const parse = (beat: string) => configSchema.parse({ listeners: [], policyServer: { listen: '127.0.0.1:0' }, nodes: { beat } });
    expect(parse('250ms').nodes.beat).toBe(250);
    expect(() => parse('50ms')).toThrow(/at least 100ms/);
    expect(() => parse('2m')).toThrow();
  });
});
