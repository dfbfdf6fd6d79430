// The submission splice's relay (backend/smtp-splice.ts) over real loopback sockets, against a
// scripted SMTP backend — named as such: it plays the faults Dovecot does not produce (a
// backend that ends a message somewhere else than the tracker does, a client losing the
// tracker while a refusal waits for its place). Real Dovecot is in
// test/integration/sending-limits.test.ts. Checks: no byte lost or changed, our 451 in its
// place, the session goes on after the tracker gives up.
import net, { type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { offersChunking, submissionRelay } from '../../src/backend/smtp-splice.js';
import { splice } from '../../src/backend/splice.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { sendingLimits } from '../../src/limits/sending.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { SmtpTracker, TRACKER_MAX_HELD_BYTES } from '../../src/protocols/smtp/tracker.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { captureLogger } from '../helpers/log-capture.js';
import { until } from '../helpers/until.js';

/** A backend that answers each command line with `reply(line)` and reads a body up to
 *  CRLF.CRLF only (the strict RFC 5321 reading, unlike Dovecot's), then answers 250. */
function scriptedBackend(reply: (line: string) => string) {
  const received: Buffer[] = [];
  const server = net.createServer((s) => {
    let buf = '';
    let inBody = false;
    s.write('220 scripted\r\n');
    s.on('data', (d: Buffer) => {
      received.push(d);
      buf += d.toString('latin1');
      for (;;) {
        if (inBody) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buf = buf.slice(end + 5);
          inBody = false;
          s.write('250 2.0.0 queued\r\n');
          continue;
        }
        const lf = buf.indexOf('\n');
        if (lf < 0) return;
        const line = buf.slice(0, lf + 1);
        buf = buf.slice(lf + 1);
        const r = reply(line);
        s.write(r);
        if (r.startsWith('354')) inBody = true;
      }
    });
  });
  return { server, received: () => Buffer.concat(received).toString('latin1') };
}

const servers: net.Server[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

const listen = (server: net.Server) =>
  new Promise<number>((resolve) => {
    servers.push(server);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });

/** mailgate's part: each client connection spliced to the backend through the relay, with
 *  limits.sending as given (as if the client had just logged in as alice). */
async function rig(sending: Record<string, unknown>, reply: (line: string) => string, holdLimitMs?: number) {
  const backend = scriptedBackend(reply);
  const backendPort = await listen(backend.server);
  const clock = new ManualClock();
  const cfg = parseConfig({ listeners: [{ name: 's', protocol: 'smtp', listen: '127.0.0.1:1587', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: 1 } }, limits: { sending } });
  const { logger, captured } = captureLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const limits = sendingLimits(cfg, new MemoryStore(clock), new KeyBuilder('splice-test-secret-000001'), clock, logger, () => undefined, metrics)!;
  let spliced = false;
  const proxy = net.createServer((client) => {
    const up = net.connect(backendPort, '127.0.0.1');
    sockets.push(client, up);
    // The greeting stands in for the login's exchange; the splice starts after it.
    up.once('data', () => {
      splice(client, up, 60_000, submissionRelay({ limits, user: 'alice', log: logger, metrics, ...(holdLimitMs ? { holdLimitMs } : {}) })(Buffer.alloc(0)));
      spliced = true;
    });
  });
  const port = await listen(proxy);
  const client = net.connect(port, '127.0.0.1');
  sockets.push(client);
  let got = '';
  client.on('data', (d: Buffer) => (got += d.toString('latin1')));
  await new Promise((r) => client.once('connect', r));
  // Let the splice start before the client speaks (the relay takes over after the greeting).
  await until(() => spliced, 'the splice');
  return { client, got: () => got, backend, captured, metrics };
}

const ok = (line: string) => (line.startsWith('DATA') ? '354 go ahead\r\n' : '250 2.0.0 ok\r\n');

describe('submission relay', () => {
  it('a body sent before the 354 (past the protocol) while a refusal waits for its place: every byte reaches the backend in order, the 451 keeps its place', async () => {
    const r = await rig({ recipientsPerDay: 1 }, ok);
    const body = Buffer.alloc(TRACKER_MAX_HELD_BYTES + 10, 'a');
    r.client.write('MAIL FROM:<alice@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n');
    r.client.write(body);
    r.client.write('\r\n.\r\n');
    await until(() => /queued/.test(r.got()), 'the message queued');
    expect(r.got().match(/^\d{3}/gm)).toEqual(['250', '250', '451', '354', '250']);
    expect(r.backend.received()).toBe('MAIL FROM:<alice@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n' + body.toString('latin1') + '\r\n.\r\n');
  });

  it('a reply nobody asked for: the tracker gives up, logged, and from then on every byte passes, uncounted and unrefused', async () => {
    const r = await rig({ messagesPerDay: 1 }, (line) => (line.startsWith('NOOP') ? '250 ok\r\n250 and again\r\n' : ok(line)));
    r.client.write('MAIL FROM:<alice@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n');
    await until(() => /^354/m.test(r.got()), 'the 354');
    r.client.write('one\r\n.\r\n');
    await until(() => /queued/.test(r.got()), 'the first message queued');
    r.client.write('NOOP\r\n');
    await until(() => /again/.test(r.got()), 'the double reply');
    r.client.write('MAIL FROM:<alice@x>\r\n');
    await until(() => r.got().match(/^250/gm)!.length === 6, 'the second MAIL answered by the backend');
    expect(r.got()).not.toMatch(/^451/m);
    expect(r.backend.received()).toMatch(/NOOP\r\nMAIL FROM:<alice@x>\r\n$/);
    expect(r.captured.lines.find((l) => l.event === 'smtp.tracker-lost')).toMatchObject({ reason: expect.any(String) });
  });

  it('a backend that ends a message elsewhere (strictly at CRLF.CRLF): after the hold limit the held bytes go on and the session lives', async () => {
    const r = await rig({ messagesPerDay: 100 }, ok, 300);
    r.client.write('MAIL FROM:<alice@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n');
    await until(() => /^354/m.test(r.got()), 'the 354');
    r.client.write('line one\n.\nline two\r\n.\r\n');
    await until(() => /queued/.test(r.got()), 'the message queued after the hold gave up');
    r.client.write('NOOP\r\n');
    await until(() => r.got().match(/^250/gm)!.length === 4, "the NOOP's reply");
    expect(r.backend.received()).toBe('MAIL FROM:<alice@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nline one\n.\nline two\r\n.\r\nNOOP\r\n');
    expect(r.captured.lines.find((l) => l.event === 'smtp.tracker-lost')).toMatchObject({ reason: expect.stringMatching(/no reply in time/) });
  });

  it('a bug of ours in the tracker ends that session, logged with its stack, and nothing else', async () => {
    const r = await rig({ messagesPerDay: 10 }, ok);
    const spy = vi.spyOn(SmtpTracker.prototype, 'fromBackend').mockImplementationOnce(() => {
      throw new Error('tracker bug for the test');
    });
    let closed = false;
    r.client.on('close', () => (closed = true));
    r.client.write('NOOP\r\n');
    await until(() => closed, 'the session ended');
    spy.mockRestore();
    expect(r.captured.lines.find((l) => l.event === 'auth.bug')).toMatchObject({ err: expect.stringMatching(/tracker bug for the test/) });
    const other = await rig({ messagesPerDay: 10 }, ok);
    other.client.write('NOOP\r\n');
    await until(() => /^250/m.test(other.got()), 'another session served');
  });

  it('CHUNKING is read from the backend EHLO as probed', () => {
    expect(offersChunking(['PIPELINING', 'CHUNKING', 'SIZE 1000'])).toBe(true);
    expect(offersChunking(['PIPELINING', 'chunking'])).toBe(true);
    expect(offersChunking(['PIPELINING', 'SIZE 1000'])).toBe(false);
    expect(offersChunking([])).toBeUndefined();
  });
});
