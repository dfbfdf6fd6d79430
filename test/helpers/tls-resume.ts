// A real TLS client that offers the session an earlier connection left (node:tls `session`,
// from its 'session' events) and says whether the server resumed it: one IMAP login over
// implicit TLS or after STARTTLS.
import net from 'node:net';
import tls from 'node:tls';
import { RawClient } from './raw-client.js';

export interface ResumeResult {
  /** The server took the offered session (no certificate, no key exchange signature). */
  reused: boolean;
  protocol: string | null;
  /** The newest session the server handed out on this connection (a ticket), for the next. */
  session: Buffer | undefined;
  login: string;
}

export interface ResumeOptions {
  mode: 'implicit' | 'starttls';
  session?: Buffer;
  maxVersion?: tls.SecureVersion;
  servername?: string;
  localAddress?: string;
  user?: string;
  pass?: string;
}

export async function resumableLogin(port: number, opts: ResumeOptions): Promise<ResumeResult> {
  const { mode, session, maxVersion = 'TLSv1.3', servername, localAddress } = opts;
  let latest: Buffer | undefined;
  const tlsOpts = { rejectUnauthorized: false, maxVersion, ...(session ? { session } : {}), ...(servername ? { servername } : {}) };
  let plain: RawClient | undefined;
  if (mode === 'starttls') {
    plain = await RawClient.connect(port, { host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    await plain.waitFor(/^\* OK /m);
    plain.write('s STARTTLS\r\n');
    await plain.waitFor(/^s OK /m);
    plain.socket.removeAllListeners('data');
    plain.socket.removeAllListeners('close');
  }
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = plain
      ? tls.connect({ socket: plain.socket as net.Socket, ...tlsOpts }, () => resolve(s))
      : tls.connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}), ...tlsOpts }, () => resolve(s));
    s.on('session', (sess: Buffer) => (latest = sess));
    s.once('error', reject);
  });
  const c = RawClient.wrap(socket);
  if (mode === 'implicit') await c.waitFor(/^\* OK /m);
  c.write(`a LOGIN ${opts.user ?? 'alice'} ${opts.pass ?? 'alice-pass'}\r\n`);
  const login = await c.waitFor(/^a (OK|NO|BAD)/m);
  const result = { reused: socket.isSessionReused(), protocol: socket.getProtocol(), session: latest, login };
  c.close();
  return result;
}

/** Reconnects `times` times offering the same session; the reuse of each, in order. */
export async function reconnect(port: number, opts: ResumeOptions & { session: Buffer }, times: number): Promise<ResumeResult[]> {
  const out: ResumeResult[] = [];
  for (let i = 0; i < times; i++) out.push(await resumableLogin(port, opts));
  return out;
}
