// The replay skeleton (backend/replay.ts) with a dialect written for the test, against a
// scripted fake backend: the connection is closed and the secrets wiped on every path, a
// MailgateError is "backend unavailable", any other exception is thrown on as the bug it is.
import { describe, expect, it } from 'vitest';
import { replay, type Dialect } from '../../src/backend/replay.js';
import type { LoginContext } from '../../src/backend/types.js';
import { MailgateError } from '../../src/errors.js';
import { parseBackend } from '../helpers/backend-config.js';
import { startFakeBackend } from '../helpers/fake-backend.js';
import { until } from '../helpers/until.js';

const ctx: LoginContext = { tag: 'a', hostname: 'mx.test', client: { ip: '127.0.0.1', port: 40000, localIp: '127.0.0.1', localPort: 143, sessionId: 'sk1' } };
const creds = () => ({ mechanism: 'USER' as const, user: Buffer.from('alice'), password: Buffer.from('secret') });

/** A dialect that reads the greeting, sends one line holding the password, then fails as told. */
function dialect(fail: () => never, kept: Buffer[]): Dialect<null> {
  return {
    open: async (conn) => (await conn.readLine(), null),
    tellClient: async () => null,
    passwordLogin: async (conn, _s, c, _ctx, secrets) => {
      const line = Buffer.concat([Buffer.from('PASS '), c.password, Buffer.from('\r\n')]);
      secrets.push(line);
      kept.push(line);
      conn.write(line);
      await conn.readLine();
      return fail();
    },
    tokenLogin: async () => fail(),
    capabilities: () => [],
    goodbye: 'QUIT\r\n',
  };
}

describe('replay skeleton', () => {
  it('a MailgateError is "unavailable"; a bug is thrown on; either way the connection closes and the secret lines are wiped', async () => {
    for (const [fail, expectation] of [
      [() => { throw new MailgateError('MG_BACKEND_PROTOCOL', 'nonsense reply'); }, 'unavailable'],
      [() => { throw new TypeError('a bug'); }, 'bug'],
    ] as [() => never, string][]) {
      const fake = await startFakeBackend('+OK ready\r\n', () => '+OK\r\n');
      const kept: Buffer[] = [];
      const login = replay(dialect(fail, kept)).login(parseBackend(fake.cfg()), creds(), ctx);
      if (expectation === 'bug') await expect(login).rejects.toThrow(TypeError);
      else expect(await login).toEqual({ kind: 'unavailable', error: 'nonsense reply', unreachable: false });
      expect(fake.lines).toEqual(['PASS secret']);
      expect(kept[0]!.every((b) => b === 0)).toBe(true);
      await until(() => fake.openConnections() === 0, 'the replay to close its connection');
      await fake.stop();
    }
  });

  it('a server that cannot be reached is unavailable and unreachable (a pool tries the next one)', async () => {
    const fake = await startFakeBackend('+OK\r\n', () => undefined);
    const cfg = parseBackend(fake.cfg({ connectTimeout: '1s' }));
    await fake.stop();
    expect(await replay(dialect(() => { throw new Error('not reached'); }, [])).login(cfg, creds(), ctx)).toMatchObject({ kind: 'unavailable', unreachable: true });
  });
});
