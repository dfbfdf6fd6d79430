// The primary ↔ worker channel (src/cluster/channel.ts, protocol.ts) over an in-memory pair that
// goes through JSON like node:cluster's IPC: calls are answered, a handler's error comes back as
// an error, notes arrive, foreign messages are ignored, and a call never hangs: a peer that does
// not answer gives MG_IPC_TIMEOUT, a closed channel MG_IPC_CLOSED, too many waiting
// MG_IPC_BUSY, and nothing stays pending.
import { describe, expect, it } from 'vitest';
import { Channel } from '../../src/cluster/channel.js';
import { isEnvelope } from '../../src/cluster/protocol.js';
import { portPair } from '../helpers/ipc-pair.js';
import { until } from '../helpers/until.js';

type Calls = { add: { args: { x: number; y: number }; result: number }; boom: { args: null; result: null }; slow: { args: null; result: string } };
type Notes = { tick: { n: number } };

function pair() {
  const p = portPair();
  const worker = new Channel<Calls, Notes, Calls, Notes>(p.a, 'the primary');
  const primary = new Channel<Calls, Notes, Calls, Notes>(p.b, 'worker 1');
  return { p, worker, primary };
}

describe('cluster channel', () => {
  it('answers calls in either direction, with the value the handler returns or resolves', async () => {
    const { worker, primary } = pair();
    primary.handle('add', ({ x, y }) => x + y);
    worker.handle('slow', async () => 'late but there');
    expect(await worker.call('add', { x: 2, y: 3 }, 1000)).toBe(5);
    expect(await primary.call('slow', null, 1000)).toBe('late but there');
    expect(worker.inFlight).toBe(0);
  });

  it("a handler's throw comes back as an error naming the peer", async () => {
    const { worker, primary } = pair();
    primary.handle('boom', () => {
      throw new Error('store exploded');
    });
    await expect(worker.call('boom', null, 1000)).rejects.toThrow('the primary: store exploded');
    await expect(worker.call('slow', null, 1000)).rejects.toThrow('no handler for slow');
  });

  it('delivers notes, and ignores messages that are not mailgate envelopes', async () => {
    const { p, worker, primary } = pair();
    const got: number[] = [];
    primary.on('tick', ({ n }) => got.push(n));
    worker.notify('tick', { n: 1 });
    p.a.send({ type: 'prom-client:getMetricsReq', requestId: 1 } as never, () => undefined);
    worker.notify('tick', { n: 2 });
    await until(() => got.length === 2, 'both notes');
    expect(got).toEqual([1, 2]);
    expect(isEnvelope({ cmd: 'NODE_CLUSTER' })).toBe(false);
    expect(isEnvelope({ mg: 'call', id: 'x', op: 'add' })).toBe(false);
  });

  it('a peer that does not answer: MG_IPC_TIMEOUT after the deadline, and the call is forgotten', async () => {
    const { p, worker, primary } = pair();
    primary.handle('add', ({ x, y }) => x + y);
    p.stall('b', true); // the primary's answers never leave
    const err = await worker.call('add', { x: 1, y: 1 }, 30).catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: 'MG_IPC_TIMEOUT', message: 'the primary did not answer add within 30 ms' });
    expect(worker.inFlight).toBe(0);
    p.stall('b', false); // the late answer finds nothing waiting and changes nothing
    await new Promise((r) => setImmediate(r));
    expect(worker.inFlight).toBe(0);
  });

  it('an answer that arrived while the loop was busy past the deadline still counts', async () => {
    const { p, worker, primary } = pair();
    primary.handle('add', ({ x, y }) => x + y);
    p.stall('b', true);
    const call = worker.call('add', { x: 20, y: 22 }, 5);
    await new Promise((r) => setTimeout(r, 1)); // the primary has answered; the answer is held
    // In one turn: the answer reaches the socket, then the loop is blocked past the deadline
    // (as under load). On the next turn the deadline's timer runs before the socket is read.
    await new Promise<void>((r) =>
      setImmediate(() => {
        p.stall('b', false);
        const busyUntil = Date.now() + 20;
        while (Date.now() < busyUntil);
        r();
      }),
    );
    expect(await call).toBe(42);
  });

  it('closing fails every pending call at once and every later one, without waiting for deadlines', async () => {
    const { p, worker } = pair();
    p.stall('a', true);
    const pending = worker.call('add', { x: 1, y: 2 }, 60_000);
    worker.close('the primary is gone');
    await expect(pending).rejects.toMatchObject({ code: 'MG_IPC_CLOSED', message: 'the primary is gone' });
    await expect(worker.call('add', { x: 1, y: 2 }, 60_000)).rejects.toMatchObject({ code: 'MG_IPC_CLOSED' });
    expect(worker.inFlight).toBe(0);
  });

  it('past the bound of calls in flight, a stalled peer is not asked more: the call fails at once', async () => {
    const p = portPair();
    const worker = new Channel<Calls, Notes, Calls, Notes>(p.a, 'the primary', 2);
    p.stall('a', true);
    const waiting = [worker.call('add', { x: 1, y: 1 }, 60_000), worker.call('add', { x: 2, y: 2 }, 60_000)];
    await expect(worker.call('add', { x: 3, y: 3 }, 60_000)).rejects.toMatchObject({ code: 'MG_IPC_BUSY', message: 'add: 2 calls already wait for the primary' });
    await new Promise((r) => setImmediate(r));
    expect(p.sent.a).toBe(2);
    expect(p.writes.a).toBe(1); // one turn's calls, one write
    worker.close('done');
    await Promise.allSettled(waiting);
  });

  it('a note sent `now` is written at once, with what the turn queued before it', async () => {
    const p = portPair();
    const worker = new Channel<Calls, Notes, Calls, Notes>(p.a, 'the primary');
    void worker.call('add', { x: 1, y: 1 }, 60_000).catch(() => undefined);
    worker.notify('tick', { n: 1 }, true);
    expect(p.sent.a).toBe(2);
    expect(p.writes.a).toBe(1);
    worker.close('done');
  });

  it('a send that fails (the channel broke) rejects the call at once', async () => {
    const { p, worker } = pair();
    p.cut('a');
    await expect(worker.call('add', { x: 1, y: 2 }, 60_000)).rejects.toMatchObject({ code: 'MG_IPC_CLOSED', message: expect.stringMatching(/cannot reach the primary/) });
  });
});
