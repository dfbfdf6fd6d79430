// Hostile: everything split byte by byte over real sockets, for IMAP, POP3 and SMTP against a
// real Dovecot: commands, SASL exchanges and the STARTTLS command one byte per TCP write, the
// TLS handshake itself one byte per write, and, inside TLS, one byte per TLS record. Each
// login must behave exactly as if it had arrived in one segment.
//
// Already covered elsewhere: every machine script runs one chunk and byte by byte with equal
// effects (test/helpers/machine-driver.ts, unit/*-machine.test.ts, unit/imap-parser.test.ts);
// fuzz-machines.test.ts checks arbitrary chunkings of arbitrary input.
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { GREETING, proxyConfig, type Proto } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';

// sink: Dovecot's submission service needs its relay after login.
const rig = dovecotForFile({ sink: true });
let proxy: TestProxy;

beforeAll(async () => {
  proxy = await rig.proxy(proxyConfig(rig.dovecot));
});

/** Writes every byte on its own, waiting for each to be handed to the kernel and a turn of
 *  the event loop in between (TCP_NODELAY: one segment each). On a TLS socket each byte is
 *  its own TLS record. */
async function dribble(socket: net.Socket, data: string | Buffer): Promise<void> {
  const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  for (let i = 0; i < buf.length; i++) {
    await new Promise<void>((r) => socket.write(buf.subarray(i, i + 1), () => r()));
    await new Promise((r) => setImmediate(r));
  }
}

/** A stream over a TCP socket that sends whatever is written to it one byte per write: a TLS
 *  client on top dribbles its handshake. */
function byteByByte(raw: net.Socket): Duplex {
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      dribble(raw, chunk).then(() => cb(), cb);
    },
    read() {},
  });
  raw.on('data', (b: Buffer) => d.push(b));
  raw.on('end', () => d.push(null));
  raw.on('error', (err) => d.destroy(err));
  return d;
}

class Client {
  text = '';
  constructor(public socket: net.Socket) {
    this.listen(socket);
  }
  listen(s: net.Socket): void {
    s.on('data', (b: Buffer) => (this.text += b.toString('latin1')));
    s.on('error', () => undefined);
  }
  async waitFor(re: RegExp): Promise<string> {
    await until(() => re.test(this.text), `${re} in ${JSON.stringify(this.text)}`);
    return this.text;
  }
  /** TLS over this connection with a dribbled handshake. */
  async upgrade(): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    const secure = tls.connect({ socket: byteByByte(raw), rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.text = '';
    this.socket = secure;
    this.listen(secure);
  }
}

async function connect(port: number, ip: string): Promise<Client> {
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: ip }, () => resolve(c));
    c.once('error', reject);
  });
  s.setNoDelay(true);
  return new Client(s);
}

/** A login with the SASL exchange done in steps, then one command only the backend answers. */
const SCRIPT: Record<Proto, { starttls: [string, RegExp]; steps: [string, RegExp][] }> = {
  imap: {
    starttls: ['s STARTTLS\r\n', /^s OK /m],
    steps: [
      ['a AUTHENTICATE LOGIN\r\n', /^\+ /m],
      [`${b64('alice')}\r\n`, /^\+ [^\r]*\r\n\+ /m],
      [`${b64('alice-pass')}\r\n`, /^a OK /m],
      ['b SELECT INBOX\r\n', /^b OK \[READ-WRITE\]/m],
    ],
  },
  pop3: {
    starttls: ['STLS\r\n', /^\+OK Begin/m],
    steps: [
      ['AUTH PLAIN\r\n', /^\+ \r\n/m],
      [`${b64('\0alice\0alice-pass')}\r\n`, /^\+OK Logged in/m],
      ['STAT\r\n', /^\+OK \d+ \d+\r\n/m],
    ],
  },
  smtp: {
    starttls: ['EHLO c\r\nSTARTTLS\r\n', /^220 2\.0\.0/m],
    steps: [
      ['EHLO client.test\r\n', /^250 /m],
      ['AUTH LOGIN\r\n', /^334 /m],
      [`${b64('alice')}\r\n`, /^334 [^\r]*\r\n334 /m],
      [`${b64('alice-pass')}\r\n`, /^235 /m],
      ['RSET\r\n', /^235 [^\r]*\r\n250 2\.0\.0/m],
    ],
  },
};

async function login(c: Client, proto: Proto): Promise<void> {
  for (const [bytes, reply] of SCRIPT[proto].steps) {
    await dribble(c.socket, bytes);
    await c.waitFor(reply);
  }
}

describe('byte by byte', () => {
  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s plain: every command and SASL step one byte per segment', async (proto) => {
    const c = await connect(proxy.port(`${proto}-plain`), `127.0.46.${1 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`);
    await c.waitFor(GREETING[proto]);
    await login(c, proto);
    c.socket.destroy();
  });

  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s STARTTLS: the command, the TLS handshake and every TLS record one byte each', async (proto) => {
    const ip = `127.0.46.${10 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    const c = await connect(proxy.port(`${proto}-starttls`), ip);
    await c.waitFor(GREETING[proto]);
    const [starttls, ok] = SCRIPT[proto].starttls;
    await dribble(c.socket, starttls);
    await c.waitFor(ok);
    await c.upgrade();
    await login(c, proto);
    c.socket.destroy();
    // Nothing was read ahead as plaintext: no injection was reported for a well-paced client.
    expect(proxy.log.lines.filter((l) => l.ip === ip && l.event === 'starttls.injection')).toEqual([]);
  });

  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s implicit TLS: handshake one byte per segment, then one byte per record', async (proto) => {
    const c = await connect(proxy.port(`${proto}-tls`), `127.0.46.${20 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`);
    await c.upgrade();
    await c.waitFor(GREETING[proto]);
    await login(c, proto);
    c.socket.destroy();
  });
});
