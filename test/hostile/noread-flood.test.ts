// Hostile: no-read floods before login (issue 15), for IMAP, POP3 and SMTP against a real
// Dovecot. Sixty clients from twenty addresses pipeline cheap commands (CAPABILITY, CAPA, EHLO)
// as fast as their sockets take them and never read a reply. Asserted on what happened, never
// on timing: a legitimate client's greeting and LOGIN are answered meanwhile; each flooder's
// session stops being read once its unread replies pass the bound (mailgate's own count),
// holds no more than one read of its commands, is said the protocol's goodbye and closed; what
// each flooder was sent in all stays within the bound plus what the deadline lets through.
//
// Already covered elsewhere: the budget per call, one chunk and byte by byte
// (unit/turn-budget-machine.test.ts); floods of a dozen clients and the readers beside them
// (exhaustion.test.ts).
import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  PREAUTH_REPLY_DRAIN_BYTES_PER_SEC,
  PREAUTH_UNREAD_DEADLINE_MS,
  PREAUTH_UNREAD_REPLY_BYTES,
} from '../../src/bounds.js';
import type { Session } from '../../src/server/session.js';
import { LOGIN_OK, loginOnce, PROTOS, proxyConfig, type Proto } from '../helpers/hostile.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const rig = dovecotForFile();
let proxy: TestProxy;
beforeAll(async () => {
  // A pre-auth deadline far beyond the test: whatever ends a flooder here is the unread bound.
  proxy = await rig.proxy(proxyConfig(rig.dovecot, { timeouts: { preauth: '600s' } }));
});

const FLOODERS = 60;
const ADDRESSES = 20;
const FLOOD: Record<Proto, string> = { imap: 'a CAPABILITY\r\n', pop3: 'CAPA\r\n', smtp: 'EHLO c\r\n' };
/** The protocol's goodbye for a deadline, the last thing a flooder is sent. */
const GOODBYE: Record<Proto, RegExp> = { imap: /\* BYE [^\r\n]*\r\n$/, pop3: /-ERR \[SYS\/TEMP\] [^\r\n]*\r\n$/, smtp: /421 4\.4\.2 [^\r\n]*\r\n$/ };
/** What a flooder may be sent in all: the bound, what the drain rate lets through while it is
 *  held (plus a second for the turns it is read), a turn's replies (a few hundred bytes each)
 *  past the bound at each of its few pauses, and the goodbye. */
const MOST_SENT = PREAUTH_UNREAD_REPLY_BYTES + PREAUTH_REPLY_DRAIN_BYTES_PER_SEC * (PREAUTH_UNREAD_DEADLINE_MS / 1000 + 1) + 8 * 1024;
/** A quarter MiB of commands each: far more than mailgate reads of it before the goodbye. */
const FLOOD_CHUNKS = 4;

interface Flooder {
  s: net.Socket;
  received: Buffer[];
  gone: boolean;
}

async function flooder(port: number, ip: string, payload: string): Promise<Flooder> {
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: ip }, () => resolve(c));
    c.once('error', reject);
  });
  s.on('error', () => undefined);
  const received: Buffer[] = [];
  s.on('data', (d: Buffer) => received.push(d));
  s.pause(); // never reads, until the test looks at what it was sent
  const f: Flooder = { s, received, gone: false };
  s.once('close', () => (f.gone = true));
  const chunk = Buffer.from(payload.repeat(Math.floor(65536 / payload.length)));
  let left = FLOOD_CHUNKS;
  const pump = () => {
    while (left > 0 && !s.destroyed) {
      left--;
      if (!s.write(chunk)) return; // the rest once the kernel took this
    }
  };
  s.on('drain', pump);
  pump();
  return f;
}

/** A session's private parts, read the way the session itself does. */
const inside = (s: Session) => s as unknown as { socket: net.Socket; machine: { bufferedBytes: number } };

describe('sixty clients that pipeline cheap commands and never read', () => {
  it.each(PROTOS)('%s: a legitimate login is answered; each flooder is held unread, said goodbye and closed, within its bounds', async (proto) => {
    const prefix = `127.0.${70 + PROTOS.indexOf(proto)}.`;
    const port = proxy.port(`${proto}-plain`);
    const flooders = await Promise.all(Array.from({ length: FLOODERS }, (_, i) => flooder(port, `${prefix}${1 + (i % ADDRESSES)}`, FLOOD[proto])));
    const sessions = () => proxy.listeners.flatMap((l) => [...l.sessions]).filter((s) => s.clientIp.startsWith(prefix));
    const dropped = () => proxy.log.lines.filter((l) => l.reason === 'replies not read' && String(l.ip).startsWith(prefix));

    // Each flooder's session stops being read (seen paused at least once, or already gone);
    // meanwhile it holds at most one read of commands and the bound's worth of replies.
    const held = new Set<Session>();
    let mostBuffered = 0;
    let mostQueued = 0;
    const look = () => {
      for (const s of sessions()) {
        const { socket, machine } = inside(s);
        if (socket.isPaused()) held.add(s);
        mostBuffered = Math.max(mostBuffered, machine.bufferedBytes);
        mostQueued = Math.max(mostQueued, socket.writableLength);
      }
      return held.size + dropped().length >= FLOODERS;
    };
    await until(look, 'every flooder to be held unread', 30_000);

    // With every flooder held, a legitimate client logs in from its own address.
    expect(await loginOnce(proto, port, 'alice', 'alice-pass', { localAddress: `${prefix}200` })).toMatch(LOGIN_OK[proto]);

    // Then each flooder is said goodbye and closed: it reads what it was sent once its session
    // has ended (before the close grace turns the FIN into a reset).
    const readAfterEnd = () => {
      look();
      const open = new Set(sessions().map((s) => (s as unknown as { client: { port: number } }).client.port));
      for (const f of flooders) if (!open.has(f.s.localPort!)) f.s.resume();
      return open.size === 0;
    };
    await until(readAfterEnd, 'every flooder to be dropped', PREAUTH_UNREAD_DEADLINE_MS * 4);
    const left = () => flooders.filter((f) => !f.gone).map((f) => `${f.s.localAddress}:${f.s.localPort} (${f.received.length} reads)`);
    await until(() => left().length === 0, 'the flooders to see the close', 10_000).catch((err: Error) => {
      throw new Error(`${err.message}; still open: ${left().join(', ')}`);
    });

    expect(dropped()).toHaveLength(FLOODERS);
    for (const f of flooders) {
      const text = Buffer.concat(f.received).toString('latin1');
      expect(text).toMatch(GOODBYE[proto]);
      expect(text.length).toBeLessThanOrEqual(MOST_SENT);
    }
    expect(mostBuffered).toBeLessThanOrEqual(128 * 1024); // one read of commands and a partial line
    expect(mostQueued).toBeLessThanOrEqual(PREAUTH_UNREAD_REPLY_BYTES + 4 * 1024); // the bound and one turn past it
    expect(proxy.log.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  }, 90_000);
});
