// OAuth test material: client messages (OAUTHBEARER RFC 7628 §3.1, XOAUTH2) and a small RFC
// 7662 token-introspection endpoint on a free loopback port, for Dovecot's oauth2 passdb.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const oauthBearer = (user: string, token: string, port = 143) =>
  `n,a=${user},\x01host=localhost\x01port=${port}\x01auth=Bearer ${token}\x01\x01`;
export const xoauth2 = (user: string, token: string) => `user=${user}\x01auth=Bearer ${token}\x01\x01`;

export interface Introspection {
  url: string;
  /** Tokens Dovecot asked about, in order. */
  seen: string[];
  stop(): Promise<void>;
}

/** Answers POST token=… with {active: true, username} for the tokens in `valid` (token →
 *  user) and {active: false} for any other. */
export async function startIntrospection(valid: Record<string, string>): Promise<Introspection> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('latin1')));
    req.on('end', () => {
      const token = new URLSearchParams(body).get('token') ?? '';
      seen.push(token);
      const user = Object.hasOwn(valid, token) ? valid[token] : undefined;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(user ? { active: true, username: user } : { active: false }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/introspect`,
    seen,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
