// store.type redis in the config: exactly one connection mode, the key secret required
// (from the file or MAILGATE_KEY_SECRET), defaults for timeout and onError.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { MailgateError } from '../../src/errors.js';

const base = {
  listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:1143', tls: 'none', backend: 'imap' }],
  backends: { imap: { host: '127.0.0.1', port: 143 } },
};
const withStore = (redis: Record<string, unknown>, limits: Record<string, unknown> = { keySecret: 'sixteen-chars-at-least' }) => ({
  ...base,
  store: { type: 'redis', redis },
  limits,
});

describe('store.type redis', () => {
  it('defaults: 250 ms timeout, onError local, prefix mailgate:', () => {
    const cfg = parseConfig(withStore({ url: 'redis://127.0.0.1:6379' }), {});
    expect(cfg.store).toEqual({ type: 'redis', redis: { url: 'redis://127.0.0.1:6379', keyPrefix: 'mailgate:', timeout: 250, onError: 'local' } });
  });

  it('needs exactly one of url, sentinels or cluster', () => {
    expect(() => parseConfig(withStore({}), {})).toThrow(/store\.redis: expected exactly one of url, sentinels/);
    expect(() => parseConfig(withStore({ url: 'redis://x:1', cluster: ['127.0.0.1:7000'] }), {})).toThrow(/exactly one/);
    expect(() => parseConfig(withStore({ sentinels: ['127.0.0.1:26379'] }), {})).toThrow(/store\.redis\.name: sentinels need the master name/);
  });

  it('requires the key secret, naming the key, unless MAILGATE_KEY_SECRET is set', () => {
    expect(() => parseConfig(withStore({ url: 'redis://127.0.0.1:6379' }, {}), {})).toThrow(/limits\.keySecret: required with store\.type redis/);
    const cfg = parseConfig(withStore({ url: 'redis://127.0.0.1:6379' }, {}), { MAILGATE_KEY_SECRET: 'from-the-environment-1234' });
    expect(cfg.limits.keySecret).toBe('from-the-environment-1234');
    expect(() => parseConfig(withStore({ url: 'redis://h:1' }, { keySecret: 'short' }), {})).toThrow(/limits\.keySecret: expected at least 16/);
  });

  it('rejects an unknown onError and a bad timeout by key path', () => {
    expect(() => parseConfig(withStore({ url: 'redis://h:1', onError: 'panic' }), {})).toThrow(/store\.redis\.onError/);
    expect(() => parseConfig(withStore({ url: 'redis://h:1', timeout: 'fast' }), {})).toThrow(/store\.redis\.timeout: expected a duration/);
  });

  it('rejects a keyPrefix with braces as a config error naming the key (the CLI exits 2 on these): it would be every key\'s Cluster hash tag', () => {
    for (const keyPrefix of ['{mg}', 'mail{gate:', 'mail}gate:']) {
      let err: unknown;
      try {
        parseConfig(withStore({ cluster: ['127.0.0.1:7000'], keyPrefix }), {});
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MailgateError);
      expect(err).toMatchObject({ code: 'MG_CONFIG_INVALID', message: expect.stringMatching(/store\.redis\.keyPrefix: must not contain \{ or \}/) });
    }
    expect(parseConfig(withStore({ cluster: ['127.0.0.1:7000'], keyPrefix: 'mg:' }), {}).store).toMatchObject({ redis: { keyPrefix: 'mg:' } });
  });
});
