// Sending limits in worker mode: each worker's SendingLimits on an IpcStore to the primary's
// memory store, its alerts sent to the primary as the 'alert' note (as primary.ts hears them
// for its webhooks). Two workers count one account together, refuse on each other's counts,
// and the sending-limit alert reaches the primary once.
import { describe, expect, it } from 'vitest';
import { Channel } from '../../src/cluster/channel.js';
import { IpcStore, type WorkerChannel } from '../../src/cluster/ipc-store.js';
import { serveStore, type WorkerLink } from '../../src/cluster/store-host.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import type { AlertEvent } from '../../src/integrations/alerts.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { sendingLimits } from '../../src/limits/sending.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { captureLogger } from '../helpers/log-capture.js';
import { portPair } from '../helpers/ipc-pair.js';
import { until } from '../helpers/until.js';

const cfg = parseConfig({
  listeners: [{ name: 's', protocol: 'smtp', listen: '127.0.0.1:1587', tls: 'none', backend: 'b' }],
  backends: { b: { host: '127.0.0.1', port: 587 } },
  limits: { sending: { messagesPerDay: 4, newRecipientsPerDay: 3 } },
});
const keys = new KeyBuilder('sending-workers-secret-01');

describe('sending limits in worker mode', () => {
  it('two workers share the primary\'s counts; the alert reaches the primary once', async () => {
    const clock = new ManualClock();
    const store = new MemoryStore(clock);
    const atPrimary: AlertEvent[] = [];
    const worker = () => {
      const p = portPair();
      const channel: WorkerChannel = new Channel(p.a, 'the primary');
      const link: WorkerLink = new Channel(p.b, 'a worker');
      serveStore(link, store, captureLogger().logger);
      link.on('alert', (e) => atPrimary.push(e));
      return sendingLimits(cfg, new IpcStore(channel, 1000), keys, clock, captureLogger().logger, (e) => channel.notify('alert', e))!;
    };
    const [a, b] = [worker(), worker()];
    const send = async (w: typeof a, to: string) => w.accepted('alice', [(await w.checkRcpt('alice', to, { recipients: 0, newRecipients: 0 })).print]);
    await send(a, 'x@example.org');
    await send(b, 'y@example.org');
    await send(a, 'x@example.org');
    await until(async () => (await b.view('alice')).messages.count === 3, 'three messages counted');
    expect(await b.checkRcpt('alice', 'X@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ ok: true, isNew: false });
    await send(b, 'z@example.org');
    await until(() => atPrimary.length === 2, 'the alerts at the primary');
    expect(atPrimary.map((e) => [e.kind, e.limit, e.subject]).sort()).toEqual([
      ['sending-limit', 'messagesPerDay', keys.userHash('alice')],
      ['sending-limit', 'newRecipientsPerDay', keys.userHash('alice')],
    ]);
    expect(await a.checkMail('alice')).toMatchObject({ ok: false, limit: 'messagesPerDay' });
    expect(await a.checkRcpt('alice', 'w@example.org', { recipients: 0, newRecipients: 0 })).toMatchObject({ ok: false, limit: 'newRecipientsPerDay' });
    await b.reset('alice', false);
    expect(await a.checkMail('alice')).toEqual({ ok: true });
  });
});
