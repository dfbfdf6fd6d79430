// Live sessions for the kick tests (issue 20): an IMAP session logged in through a proxy and
// past one command, and a wait for the instances' kick subscribers as Redis itself counts them.
import { Redis } from 'ioredis';
import { RawClient } from './raw-client.js';

/** A spliced IMAP session from `ip` (passwords as the Dovecot rig's: NAME-pass), one NOOP
 *  answered: `b NOOP\r\n` in, the backend's answer out. */
export async function imapSession(port: number, ip: string, user: string, tls = false): Promise<RawClient> {
  const c = await RawClient.connect(port, { localAddress: ip, tls });
  await c.waitFor(/\r\n/);
  c.write(`a LOGIN ${user} ${user}-pass\r\n`);
  await c.waitFor(/^a OK/m);
  c.write('b NOOP\r\n');
  await c.waitFor(/^b OK/m);
  return c;
}

/** How many connections listen on the channel once `n` do, or after 5 s (PUBSUB NUMSUB). */
export async function subscribersOf(url: string, channel: string, n: number): Promise<number> {
  const r = new Redis(url);
  let count = 0;
  try {
    for (let i = 0; i < 250 && count < n; i++) {
      count = Number(((await r.pubsub('NUMSUB', channel)) as [string, number])[1]);
      if (count < n) await new Promise((res) => setTimeout(res, 20));
    }
  } finally {
    r.disconnect();
  }
  return count;
}
