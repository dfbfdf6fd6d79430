// A scripted FAKE mail server (not Dovecot), for faults a real server will not produce on
// demand: a stalled or reset greeting, a backend that injects bytes after STARTTLS, one that
// lacks ID/XCLIENT, odd replies. Everything else is tested against a real Dovecot.
import net from 'node:net';

/** What the fake does with one received line: reply text, or a fault. */
export type FakeAction = string | { reset: true } | { stall: true } | { close: string } | undefined;

export interface FakeBackend {
  port: number;
  /** Every line received, over all connections, in order. */
  lines: string[];
  /** The bytes received on each connection, in connection order. */
  raw(): Buffer[];
  connections(): number;
  /** Connections still open (a client that closed its side is gone). */
  openConnections(): number;
  cfg(extra?: Record<string, unknown>): Record<string, unknown>;
  stop(): Promise<void>;
}

/**
 * A scripted FAKE mail server (not Dovecot): sends `greeting` (nothing for null: a server
 * that stalls before its greeting; 'reset': RST at once), then answers each CRLF line with
 * `onLine`. `{reset}` aborts the TCP connection with RST, `{stall}` goes silent, `{close}`
 * writes and closes. Used only for faults a real server will not produce on demand.
 */
export async function startFakeBackend(greeting: string | null | 'reset', onLine: (line: string) => FakeAction): Promise<FakeBackend> {
  const lines: string[] = [];
  const received: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    const mine: Buffer[] = [];
    received.push(mine);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    if (greeting === 'reset') return void s.resetAndDestroy();
    if (greeting !== null) s.write(greeting);
    let buf = '';
    let silent = false;
    s.on('data', (d: Buffer) => {
      mine.push(d);
      if (silent) return;
      buf += d.toString('latin1');
      for (let nl = buf.indexOf('\n'); nl >= 0 && !silent; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        lines.push(line);
        const a = onLine(line);
        if (a === undefined) continue;
        if (typeof a === 'string') s.write(a);
        else if ('reset' in a) {
          silent = true;
          s.resetAndDestroy();
        } else if ('stall' in a) silent = true;
        else {
          silent = true;
          s.end(a.close);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    lines,
    raw: () => received.map((c) => Buffer.concat(c)),
    connections: () => connections,
    openConnections: () => sockets.size,
    cfg: (extra = {}) => ({ host: '127.0.0.1', port, ...extra }),
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
