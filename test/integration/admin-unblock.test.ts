// `mailgate admin unblock --user-hash HASH` against an in-process admin endpoint (a policy
// server only: no mail service): an account blocked by hand, listed by `blocks` as its keyed
// hash, is lifted by that hash (DELETE /api/v1/blocks?userHash=…); usage errors exit 2.
import { describe, expect, it } from 'vitest';
import { adminMain } from '../../src/admin/client.js';
import { startTestProxy } from '../helpers/proxy.js';

describe('mailgate admin unblock --user-hash', () => {
  it('lifts the blocks of the account `blocks` lists by hash', async () => {
    const token = 'unblock-cli-token-0123456789';
    const p = await startTestProxy({
      listeners: [],
      policyServer: { listen: '127.0.0.1:0' },
      admin: { listen: '127.0.0.1:0', token },
      limits: { rules: [{ name: 'user-logins', key: 'user', count: 'attempts', limit: 100, window: '1h' }] },
    });
    try {
      const cli = async (...args: string[]) => {
        let out = '';
        const code = await adminMain([...args, '--url', `http://127.0.0.1:${p.admin!.port}`, '--token', token], (s) => (out += s));
        return { code, out };
      };
      expect((await cli('block', 'carol', '--for', '1h')).code).toBe(0);
      const listed = JSON.parse((await cli('blocks')).out) as { blocks: { userHash: string }[] };
      const hash = listed.blocks[0]!.userHash;
      expect(await cli('unblock', '--user-hash', hash)).toEqual({ code: 0, out: expect.stringContaining('user-logins') });
      expect(JSON.parse((await cli('blocks')).out)).toEqual({ blocks: [] });
      expect((await cli('unblock', '--user-hash', hash)).code).toBe(1); // nothing left: 404
      expect((await cli('unblock')).code).toBe(2);
      expect((await cli('unblock', 'carol', '--user-hash', hash)).code).toBe(2);
    } finally {
      await p.stop();
    }
  });
});
