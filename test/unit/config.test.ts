// Unit tests for config parsing: the shipped file, durations, defaults and error messages
// that name the key path. Pure apart from temp files under os.tmpdir().
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/config/duration.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { MailgateError } from '../../src/errors.js';

const DEFAULT_FILE = fileURLToPath(new URL('../../config/mailgate.yaml', import.meta.url));

type Doc = Record<string, unknown>;
const base = (extra: Doc = {}, listener: Doc = {}): Doc => ({
  listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:1143', tls: 'none', backend: 'b', ...listener }],
  backends: { b: { host: '127.0.0.1', port: 143 } },
  ...extra,
});
const withTls = { tls: { cert: 'c.pem', key: 'k.pem' } };
const rule = (r: Doc) => ({ limits: { rules: [{ name: 'r', key: 'ip', count: 'attempts', limit: 5, window: '1h', ...r }] } });

/** The MailgateError thrown by parseConfig, or a failure if it did not throw one. */
function configError(doc: unknown): MailgateError {
  try {
    parseConfig(doc);
  } catch (err) {
    expect(err).toBeInstanceOf(MailgateError);
    return err as MailgateError;
  }
  throw new Error('parseConfig accepted an invalid config');
}

const tmp = mkdtempSync(join(tmpdir(), 'mailgate-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const writeTemp = (text: string) => {
  const file = join(tmp, `c${n++}.yaml`);
  writeFileSync(file, text);
  return file;
};

describe('the shipped config/mailgate.yaml', () => {
  const cfg = loadConfig(DEFAULT_FILE);

  it('parses, with durations in milliseconds', () => {
    expect(cfg.listeners.map((l) => [l.name, l.protocol, l.tls, l.requireTls])).toEqual([
      ['imap', 'imap', 'starttls', true],
      ['imaps', 'imap', 'implicit', true],
      ['pop3', 'pop3', 'starttls', true],
      ['pop3s', 'pop3', 'implicit', true],
      ['submission', 'smtp', 'starttls', true],
      ['submissions', 'smtp', 'implicit', true],
    ]);
    expect(cfg.listeners.map((l) => l.listen)).toEqual(['0.0.0.0:1143', '0.0.0.0:1993', '0.0.0.0:1110', '0.0.0.0:1995', '0.0.0.0:1587', '0.0.0.0:1465']);
    expect(Object.fromEntries(Object.entries(cfg.backends).map(([k, b]) => [k, b.servers.map((s) => s.port)]))).toEqual({ imap: [143], pop3: [110], submission: [587] });
    expect(cfg.admin).toEqual({ listen: '127.0.0.1:9925' });
    expect(cfg.backends.imap).toMatchObject({ servers: [{ host: '127.0.0.1', port: 143 }], tls: 'none', tlsVerify: true, connectTimeout: 10_000 });
    expect(cfg.limits.rules.find((r) => r.name === 'ip-failures')).toMatchObject({ window: 600_000, block: 1_800_000 });
    expect(cfg.store.type).toBe('memory');
  });

  it('is frozen', () => {
    expect(Object.isFrozen(cfg)).toBe(true);
  });
});

describe('durations', () => {
  it.each([
    ['90s', 90_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['250ms', 250],
    ['45', 45_000],
    [45, 45_000],
    [0, 0],
  ])('%j is %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
    expect(parseConfig(base(rule({ window: input }))).limits.rules[0]!.window).toBe(ms);
  });

  it.each(['1.5h', '-5s', '10 m', '5w', 'h', '', '1e3', '1h30m', 1.5, -1, true, null])('%j is not a duration', (input) => {
    expect(parseDuration(input)).toBeNull();
  });

  it('a bad duration error names the key path', () => {
    const err = configError(base(rule({ window: '10 minutes' })));
    expect(err.code).toBe('MG_CONFIG_INVALID');
    expect(err.message).toMatch(/^limits\.rules\.0\.window: .*duration/m);
    expect(err.message).toContain('"10 minutes"');
    expect(configError(base({ timeouts: { preauth: '1.5m' } })).message).toMatch(/^timeouts\.preauth: /m);
    expect(configError(base({ backends: { b: { host: 'h', port: 1, loginTimeout: 'x' } } })).message).toMatch(
      /^backends\.b\.loginTimeout: /m,
    );
  });

  it('defaults are milliseconds whether a section is omitted or partly given', () => {
    const none = parseConfig(base());
    expect(none.timeouts).toEqual({ preauth: 60_000, tlsHandshake: 15_000, idle: 1_800_000, shutdown: 30_000 });
    expect(none.backends.b).toMatchObject({ connectTimeout: 10_000, loginTimeout: 30_000, tls: 'none', tlsVerify: true });
    const partial = parseConfig(base({ timeouts: { idle: '2h' } }));
    expect(partial.timeouts).toEqual({ preauth: 60_000, tlsHandshake: 15_000, idle: 7_200_000, shutdown: 30_000 });
  });

  it('every default duration and count, as the running proxy sees it', () => {
    const cfg = parseConfig(base(rule({})));
    expect(cfg.timeouts).toEqual({ preauth: 60_000, tlsHandshake: 15_000, idle: 1_800_000, shutdown: 30_000 });
    expect(cfg.backends.b).toMatchObject({ healthCheck: 10_000, connectTimeout: 10_000, loginTimeout: 30_000, probeInterval: 300_000 });
    expect(cfg.limits).toMatchObject({ maxAuthAttempts: 3, maxBadCommands: 10 });
    expect(cfg.limits.rules[0]!.blockMemory).toBe(86_400_000);
  });
});

describe('errors name the key path', () => {
  it('an unknown key, at any depth', () => {
    expect(configError(base({ bogus: 1 })).message).toMatch(/^bogus: unknown key$/m);
    expect(configError(base({}, { bogus: 1 })).message).toMatch(/^listeners\.0\.bogus: unknown key$/m);
    expect(configError(base({ backends: { b: { host: 'h', port: 1, tlsverify: false } } })).message).toMatch(
      /^backends\.b\.tlsverify: unknown key$/m,
    );
    expect(configError(base(rule({ windowSec: 5 }))).message).toMatch(/^limits\.rules\.0\.windowSec: unknown key$/m);
  });

  it('a listener naming a backend that does not exist', () => {
    const err = configError(base({}, { backend: 'nope' }));
    expect(err.message).toMatch(/^listeners\.0\.backend: .*"nope"/m);
    expect(err.message).toContain('(have: b)');
  });

  it.each(['1143', 'localhost', '127.0.0.1:', '127.0.0.1:65536', '::1:143', '[::1', '[zz::1]:143', '127.0.0.1:143 '])(
    'a bad listen address %j',
    (listen) => {
      expect(configError(base({}, { listen })).message).toMatch(/^listeners\.0\.listen: expected host:port/m);
    },
  );

  it('accepts IPv6 and host name listen addresses', () => {
    expect(parseConfig(base({}, { listen: '[::1]:1143' })).listeners[0]!.listen).toBe('[::1]:1143');
    expect(parseConfig(base({}, { listen: 'localhost:1143' })).listeners[0]!.listen).toBe('localhost:1143');
  });

  it('a missing required section', () => {
    // Without backends, the listener's backend is named as missing.
    expect(configError({ listeners: base().listeners }).message).toMatch(/^listeners\.0\.backend: no backend named "\w+" \(have: none\)/m);
    expect(configError({ backends: base().backends }).message).toMatch(/^listeners: expected at least one listener \(or a policyServer\)/m);
  });

  it('groups: one source each, rules name groups that exist, databases for asn and country, DNS servers by address', () => {
    const l = (limits: unknown) => ({ policyServer: { listen: '127.0.0.1:1' }, limits });
    expect(configError(l({ groups: [{ name: 'g', cidrs: ['192.0.2.0/24'], asn: [1] }] })).message).toMatch(/^limits\.groups\.0: expected exactly one source of cidrs, file, asn, country or dnsbl \(got cidrs, asn\)/m);
    expect(configError(l({ groups: [{ name: 'g', asn: [1] }] })).message).toMatch(/^limits\.groups\.0\.asn: asn groups need limits\.geoip\.asn/m);
    expect(configError(l({ rules: [{ name: 'r', key: 'ip', count: 'attempts', limit: 1, window: '1h', only: ['nope'] }] })).message).toMatch(/^limits\.rules\.0\.only\.0: no group named "nope"/m);
    expect(configError(l({ dnsbl: { servers: ['dns.example.org:53'] } })).message).toMatch(/^limits\.dnsbl\.servers\.0: expected an IP address and port/m);
    expect(parseConfig(l({ dnsbl: { servers: ['[::1]:53', '127.0.0.1:5353'] } })).limits.dnsbl.servers).toHaveLength(2);
    expect(parseConfig(l({ groups: [{ name: 'bl', dnsbl: { zone: 'AuthBL.Example.org.' } }] })).limits.groups[0]!.dnsbl).toEqual({ lists: [{ zone: 'authbl.example.org', weight: 1 }], threshold: 1 });
  });

  it('a policy server alone is a whole config; off loopback it needs an apiKey', () => {
    expect(parseConfig({ policyServer: { listen: '127.0.0.1:9926' } }).listeners).toEqual([]);
    expect(configError({ policyServer: { listen: '0.0.0.0:9926' } }).message).toMatch(/^policyServer\.apiKey: required when policyServer\.listen is not a loopback address/m);
    expect(parseConfig({ policyServer: { listen: '0.0.0.0:9926' } }, { MAILGATE_POLICY_API_KEY: 'k'.repeat(16) }).policyServer?.apiKey).toBe('k'.repeat(16));
    expect(configError({ policyServer: { listen: '127.0.0.1:1', nginx: { imap: 'nope' } } }).message).toMatch(/^policyServer\.nginx\.imap: no backend named "nope"/m);
    const implicit = { policyServer: { listen: '127.0.0.1:1', nginx: { imap: 'b' } }, backends: { b: { host: '127.0.0.1', port: 993, tls: 'implicit' } } };
    expect(configError(implicit).message).toMatch(/^policyServer\.nginx\.imap: backend "b" uses tls: implicit/m);
  });

  it.each([
    [{ count: 'attempts', distinct: 'user' }, 'limits.rules.0.distinct: distinct needs count: failures'],
    [{ count: 'failures', key: 'ip', distinct: 'ip' }, 'limits.rules.0.distinct: distinct: ip needs key: user, or key: ip with a prefix'],
    [{ count: 'failures', key: 'user', distinct: 'user' }, 'limits.rules.0.distinct: distinct: user needs key: ip or password'],
    [{ delay: { base: '5s', max: '1s' } }, 'limits.rules.0.delay.max: must be at least delay.base'],
    [{ blockGrowth: 2 }, 'limits.rules.0.block: blockGrowth and blockMax need block'],
    [{ blockMax: '1d' }, 'limits.rules.0.block: blockGrowth and blockMax need block'],
    [{ block: '0s' }, 'limits.rules.0.block: expected a block longer than 0 (leave block out for none)'],
    [{ key: 'password', count: 'failures' }, 'limits.rules.0.key: key: password needs count: failures and distinct: user (accounts a wrong password was tried against)'],
    [{ key: 'user', prefix: { ipv4: 24 } }, 'limits.rules.0.prefix: prefix needs key: ip'],
  ])('a rule that contradicts itself (%j)', (r, line) => {
    expect(configError(base(rule(r))).message.split('\n')).toContain(line);
  });

  it('a rule check names the rule by its index', () => {
    const doc = base({ limits: { rules: [{ name: 'ok', key: 'ip', count: 'attempts', limit: 1, window: '1h' }, { name: 'bad', key: 'ip', count: 'attempts', limit: 1, window: '1h', distinct: 'user' }] } });
    expect(configError(doc).message).toBe('limits.rules.1.distinct: distinct needs count: failures');
  });

  it('reports every problem, one per line', () => {
    const err = configError(base({ bogus: 1 }, { backend: 'nope', listen: 'x' }));
    expect(err.message.split('\n').length).toBeGreaterThanOrEqual(2);
    expect(err.message).toMatch(/^bogus: unknown key$/m);
    expect(err.message).toMatch(/^listeners\.0\.listen: /m);
  });
});

describe('requireTls', () => {
  it('defaults to true for starttls and implicit, false for none', () => {
    const cfg = parseConfig({
      ...base(),
      ...withTls,
      listeners: [
        { name: 'a', protocol: 'imap', listen: '127.0.0.1:1', tls: 'starttls', backend: 'b' },
        { name: 'b', protocol: 'imap', listen: '127.0.0.1:2', tls: 'implicit', backend: 'b' },
        { name: 'c', protocol: 'imap', listen: '127.0.0.1:3', tls: 'none', backend: 'b' },
      ],
    });
    expect(cfg.listeners.map((l) => l.requireTls)).toEqual([true, true, false]);
  });

  it('an explicit false is kept on a TLS listener', () => {
    expect(parseConfig({ ...base({}, { tls: 'starttls', requireTls: false }), ...withTls }).listeners[0]!.requireTls).toBe(false);
  });

  it('true on a tls: none listener is refused', () => {
    expect(configError(base({}, { requireTls: true })).message).toMatch(/^listeners\.0\.requireTls: /m);
  });

  it('a TLS listener without the tls section is refused', () => {
    expect(configError(base({}, { tls: 'starttls' })).message).toMatch(/^listeners\.0\.tls: .*cert/m);
  });
});

describe('loadConfig', () => {
  it('reads and validates a YAML file', () => {
    const file = writeTemp(
      [
        'listeners:',
        '  - {name: i, protocol: imap, listen: "127.0.0.1:1143", tls: none, backend: b}',
        'backends:',
        '  b: {host: 127.0.0.1, port: 143, loginTimeout: 2m}',
        'timeouts:',
        '  preauth: 90s',
        '',
      ].join('\n'),
    );
    const cfg = loadConfig(file);
    expect(cfg.backends.b!.loginTimeout).toBe(120_000);
    expect(cfg.timeouts.preauth).toBe(90_000);
  });

  it('a missing file is MG_CONFIG_READ naming the file', () => {
    const file = join(tmp, 'missing.yaml');
    expect(() => loadConfig(file)).toThrow(expect.objectContaining({ code: 'MG_CONFIG_READ', message: expect.stringContaining(file) }));
  });

  it('a YAML syntax error and a duplicate key are MG_CONFIG_INVALID naming the file', () => {
    for (const text of ['listeners: [\n', 'backends: {}\nbackends: {}\n']) {
      const file = writeTemp(text);
      expect(() => loadConfig(file)).toThrow(expect.objectContaining({ code: 'MG_CONFIG_INVALID', message: expect.stringContaining(file) }));
    }
  });

  it('schema errors from a file name the key path', () => {
    const file = writeTemp('listeners: []\nbackends: {}\nextra: 1\n');
    expect(() => loadConfig(file)).toThrow(expect.objectContaining({ code: 'MG_CONFIG_INVALID', message: expect.stringMatching(/^extra: unknown key$/m) }));
  });
});

describe('tls.sni', () => {
  const sni = (entries: Doc[]) => base({ tls: { cert: 'c.pem', key: 'k.pem', sni: entries } }, { tls: 'implicit' });

  it('takes host names and one-label wildcards, lower-cased; defaults to none', () => {
    expect(parseConfig(base(withTls, { tls: 'implicit' })).tls!.sni).toEqual([]);
    const cfg = parseConfig(sni([{ names: ['Mail.Example.ORG', '*.example.net'], cert: 'a.pem', key: 'a.key' }]));
    expect(cfg.tls!.sni).toEqual([{ names: ['mail.example.org', '*.example.net'], cert: 'a.pem', key: 'a.key' }]);
  });

  it.each([['*.com'], ['mail.*.example.org'], ['127.0.0.1'], ['*'], ['localhost'], ['']])('refuses %j, naming the key', (name) => {
    expect(configError(sni([{ names: [name], cert: 'a.pem', key: 'a.key' }])).message).toMatch(/^tls\.sni\.0\.names\.0: expected a host name/m);
  });

  it('refuses a name two entries claim, naming the second', () => {
    const err = configError(sni([
      { names: ['mail.example.org'], cert: 'a.pem', key: 'a.key' },
      { names: ['imap.example.org', 'MAIL.example.org'], cert: 'b.pem', key: 'b.key' },
    ]));
    expect(err.message).toMatch(/^tls\.sni\.1\.names\.1: mail\.example\.org is already served by tls\.sni\.0$/m);
  });
});

describe('tls protocol settings', () => {
  it('minVersion defaults to TLSv1.2 and takes the versions Node knows', () => {
    expect(parseConfig(base(withTls, { tls: 'implicit' })).tls!.minVersion).toBe('TLSv1.2');
    expect(parseConfig(base({ tls: { cert: 'c', key: 'k', minVersion: 'TLSv1.3' } }, { tls: 'implicit' })).tls!.minVersion).toBe('TLSv1.3');
    expect(configError(base({ tls: { cert: 'c', key: 'k', minVersion: 'SSLv3' } }, { tls: 'implicit' })).message).toMatch(/^tls\.minVersion: /m);
  });

  it('ciphers must name a cipher OpenSSL has', () => {
    expect(parseConfig(base({ tls: { cert: 'c', key: 'k', ciphers: 'ECDHE+AESGCM' } }, { tls: 'implicit' })).tls!.ciphers).toBe('ECDHE+AESGCM');
    expect(configError(base({ tls: { cert: 'c', key: 'k', ciphers: 'NO-SUCH-CIPHER' } }, { tls: 'implicit' })).message).toMatch(/^tls\.ciphers: expected an OpenSSL cipher list/m);
  });

  it('groups must name key exchange groups OpenSSL has', () => {
    expect(parseConfig(base({ tls: { cert: 'c', key: 'k', groups: 'X25519:P-256' } }, { tls: 'implicit' })).tls!.groups).toBe('X25519:P-256');
    expect(parseConfig(base({ tls: { cert: 'c', key: 'k' } }, { tls: 'implicit' })).tls!.groups).toBeUndefined();
    expect(configError(base({ tls: { cert: 'c', key: 'k', groups: 'X25519:NO-SUCH-GROUP' } }, { tls: 'implicit' })).message).toMatch(/^tls\.groups: expected a colon-separated list of key exchange groups/m);
  });
});
