// The one config schema: types, defaults, validation and the docs of every key.
// Pure: parsing of values only; reading files is load.ts.
import os from 'node:os';
import tls from 'node:tls';
import { z } from 'zod';
import { isLoopbackHost, parseHostPort } from './address.js';
import { duration, hostPort, type PROTOCOLS, protocol, type TLS_MODES, tlsMode } from './fields.js';
import { limits } from './limits-schema.js';
import { policyServer } from './policy-server-schema.js';
import { alerts, crowdsec, firewall } from './integrations-schema.js';
import { history, notify } from './accounts-schema.js';
import { nodes } from './nodes-schema.js';

export { PROTOCOLS, TLS_MODES } from './fields.js';
export { RULE_KEYS } from './limits-schema.js';

const listener = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).describe('Name used in logs and metrics.'),
    protocol: protocol.describe('imap | pop3 | smtp'),
    listen: hostPort.describe('Address to listen on, host:port; [::]:port for IPv6.'),
    tls: tlsMode.describe('none | starttls | implicit'),
    requireTls: z.boolean().optional().describe('Refuse logins before TLS. Default true unless tls is none.'),
    backend: z.string().describe('A key of backends.'),
    hostname: z
      .string()
      .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/, 'expected a host name like mail.example.org')
      .optional()
      .describe('Host name in greetings (SMTP 220 and EHLO). Default: the machine host name.'),
    proxyProtocol: z
      .boolean()
      .default(false)
      .describe('Expect a PROXY protocol v1 or v2 header first (before TLS on implicit listeners), only from limits.trustedProxies; its source address is the client for limits, logs and the backend.'),
  })
  .transform((l) => ({ ...l, requireTls: l.requireTls ?? l.tls !== 'none', hostname: l.hostname ?? os.hostname() }));

const backend = z.strictObject({
  host: z.string().min(1).optional().describe('Backend host name or address (or use servers).'),
  port: z.number().int().min(1).max(65535).optional().describe('Backend port (with host).'),
  servers: z.array(hostPort).min(1).optional().describe('A pool of equivalent servers, host:port each, instead of host and port.'),
  sticky: z.enum(['none', 'user']).default('none').describe("user: a user's logins go to the same healthy server (rendezvous hashing: adding a server moves few users)."),
  // How soon a recovered server of a pool is used again.
  healthCheck: duration('How often servers of a pool are checked (TCP connect); unhealthy ones are skipped until they answer.').prefault('10s'),
  tls: tlsMode.default('none').describe('How mailgate talks TLS to the backend: none | starttls | implicit.'),
  tlsVerify: z.boolean().default(true).describe('Verify the backend certificate (never fall back to plaintext).'),
  ca: z.string().optional().describe('PEM file with the CA that signed the backend certificate (default: system CAs).'),
  servername: z.string().optional().describe('TLS server name to verify (default: host).'),
  connectTimeout: duration('TCP/TLS connect timeout.').prefault('10s'),
  // A whole backend login (connect, greeting, STARTTLS, LOGIN reply) must finish within this.
  loginTimeout: duration('Whole backend login (greeting to tagged reply) deadline.').prefault('30s'),
  // Re-probed on a period so that a backend upgrade shows up without a restart.
  probeInterval: duration('How often to re-read what the backend advertises (IMAP CAPABILITY, POP3 CAPA, SMTP EHLO), so the proxy offers the same.').prefault('5m'),
  proxyProtocol: z
    .enum(['v1', 'v2'])
    .optional()
    .describe('Send a PROXY protocol header with the client address first on every backend connection (Dovecot haproxy = yes, Postfix smtpd_upstream_proxy_protocol); probes send a LOCAL header.'),
  // auto by default: a backend that does not trust mailgate ignores ID and does not offer
  // XCLIENT, so telling costs nothing there, and one that does (Dovecot's
  // login_trusted_networks) then applies its own auth penalty per client, not to mailgate.
  forwardClientInfo: z
    .union([z.enum(['auto']), z.boolean()])
    .default('auto')
    .describe(
      "Tell the backend who the client is before the login (honoured from the backend's trusted networks, e.g. Dovecot login_trusted_networks): IMAP ID x-originating-ip, POP3 and SMTP XCLIENT ADDR (SMTP: also HELO, and mailgate's EHLO carries the client's EHLO name). auto: ID and XCLIENT wherever the backend offers them, otherwise the login goes on without (a backend that does not trust mailgate ignores ID and offers no XCLIENT); nothing with proxyProtocol (the header tells). true: a backend that does not offer ID/XCLIENT, or refuses it, fails the login temporarily. false: nothing is told.",
    ),
})
  .superRefine((b, ctx) => {
    if (b.servers ? b.host !== undefined || b.port !== undefined : b.host === undefined || b.port === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected host and port, or servers' });
    }
  })
  // `host`/`port` is the one-server spelling of `servers`; from here on there is only a pool,
  // and one server to dial is a ServerTarget (backend/pool.ts builds them).
  .transform(({ host, port, servers, ...rest }) => ({ ...rest, servers: servers ? servers.map((hp) => parseHostPort(hp)!) : [{ host: host!, port: port! }] }));

const redisStore = z
  .strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'expected redis://host:port or rediss://…').optional().describe('One Redis server (may carry a password: it is never logged).'),
    sentinels: z.array(hostPort).min(1).optional().describe('Sentinel addresses (host:port), with name.'),
    name: z.string().optional().describe('Sentinel master name.'),
    cluster: z.array(hostPort).min(1).optional().describe('Redis Cluster seed nodes (host:port).'),
    keyPrefix: z
      .string()
      .regex(/^[\x21-\x7e]{0,64}$/, 'expected up to 64 printable ASCII characters, no spaces')
      .refine((p) => !/[{}]/.test(p), 'must not contain { or }: Redis Cluster would take the prefix as every key\'s hash tag and put every key in one slot')
      .default('mailgate:')
      .describe('Prefix of every key mailgate writes (no braces: each subject picks its own Cluster slot).'),
    timeout: duration('No login waits longer than this on Redis; then onError applies.').prefault('250ms'),
    onError: z
      .enum(['local', 'allow', 'deny'])
      .default('local')
      .describe('While Redis is unreachable: local (same rules, in-memory counters) | allow (no limits) | deny (temporary failure).'),
  })
  .superRefine((r, ctx) => {
    const modes = [r.url, r.sentinels, r.cluster].filter((x) => x !== undefined).length;
    if (modes !== 1) ctx.addIssue({ code: 'custom', message: 'expected exactly one of url, sentinels (with name) or cluster' });
    if (r.sentinels && !r.name) ctx.addIssue({ code: 'custom', path: ['name'], message: 'sentinels need the master name' });
  })
  .describe('Redis connection, when store.type is redis.');

const timeouts = z
  .strictObject({
    // Absolute, so slow-drip clients cannot hold a connection open with a byte every few seconds.
    preauth: duration('Absolute deadline from connect to login; not reset by traffic.').prefault('60s'),
    // Node's default (120 s) lets idle handshakes pile up.
    tlsHandshake: duration('TLS handshake deadline.').prefault('15s'),
    // RFC 9051 §5.4: an IMAP server's autologout timer must be at least 30 minutes.
    idle: duration('Idle timeout of a spliced session (RFC 9051 forbids less than 30m for IMAP).').prefault('30m'),
    shutdown: duration('On SIGTERM, how long spliced sessions may go on before they are cut.').prefault('30s'),
  })
  .prefault({})
  .describe('Deadlines for client connections.');

/** Whether this OpenSSL accepts a cipher or key exchange group list (checked by building a
 *  context with it). */
function opensslAccepts(option: Pick<tls.SecureContextOptions, 'ciphers' | 'ecdhCurve'>): boolean {
  try {
    tls.createSecureContext(option);
    return true;
  } catch {
    return false;
  }
}

/** A DNS host name of two labels or more, or "*." and one, as TLS clients send in SNI; the last
 *  label starts with a letter, so an IP address (never sent in SNI, RFC 6066 §3) is refused. */
const SNI_NAME = /^(\*\.)?([A-Za-z0-9][A-Za-z0-9-]{0,62}\.)+[A-Za-z][A-Za-z0-9-]{0,62}$/;

export const configSchema = z
  .strictObject({
    workers: z
      .union([z.literal('auto'), z.number().int().min(1).max(256)])
      .default('auto')
      .describe('Processes accepting connections: auto (one per core) | N | 1 (one process, no primary). With several, each listens on every listener (SO_REUSEPORT) and a primary shares the memory store, connection limits, metrics and the admin endpoint.'),
    listeners: z.array(listener).default([]).describe('Where mail clients connect (at least one, unless policyServer is set).'),
    tls: z
      .strictObject({
        cert: z.string().describe('PEM certificate (chain) for starttls/implicit listeners.'),
        key: z.string().describe('PEM private key.'),
        devCertificate: z
          .boolean()
          .default(false)
          .describe('Generate a self-signed development certificate at cert/key when both are missing. Never for production.'),
        minVersion: z
          .enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'])
          .default('TLSv1.2')
          .describe('Oldest TLS version clients may use (as Dovecot ssl_min_protocol). Below TLSv1.2 only for clients that cannot do better; OpenSSL may also need ciphers with @SECLEVEL=0 for them.'),
        ciphers: z
          .string()
          .refine((list) => opensslAccepts({ ciphers: list }), 'expected an OpenSSL cipher list that names at least one cipher this OpenSSL has')
          .optional()
          .describe("OpenSSL cipher list for TLS 1.2 and older (TLS 1.3 suites are OpenSSL's defaults). Default: Node's."),
        groups: z
          .string()
          .refine((list) => opensslAccepts({ ecdhCurve: list }), 'expected a colon-separated list of key exchange groups this OpenSSL has, such as X25519:P-256')
          .optional()
          .describe("Key exchange groups clients may use, most preferred first, colon-separated (Dovecot's ssl_curve_list). Default: OpenSSL's, which offers the post-quantum hybrid X25519MLKEM768 first (OpenSSL 3.5, Node 24). X25519:P-256 gives that protection up for about 8 KiB less per open TLS connection and 0.1-0.2 ms less CPU per full handshake (BENCHMARKS.md)."),
        sessionTickets: z
          .boolean()
          .default(true)
          .describe('Let clients resume a TLS session (TLS 1.3 and 1.2 session tickets, valid up to 2h) instead of a full handshake: a phone that reconnects every few minutes skips the certificate signature. The ticket keys are drawn in memory at start (worker mode: by the primary, for every worker) and kept across reloads.'),
        ticketRotation: duration('How often new ticket keys are drawn (1s to 7d): a stolen key set opens only the sessions of its period. A ticket from before a rotation gets a full handshake (and a new ticket).', 7 * 86_400_000)
          .refine((ms) => ms >= 1_000, 'expected at least 1s')
          .prefault('12h'),
        sni: z
          .array(
            z.strictObject({
              names: z
                .array(
                  z
                    .string()
                    .regex(SNI_NAME, 'expected a host name like mail.example.org, or *.example.org for one label')
                    .transform((n) => n.toLowerCase()),
                )
                .min(1)
                .describe('Host names this certificate serves, as clients ask for them (TLS SNI); "*.example.org" matches one label.'),
              cert: z.string().describe('PEM certificate (chain).'),
              key: z.string().describe('PEM private key.'),
            }),
          )
          .default([])
          .describe('More certificates, chosen by the name the client asks for (SNI): several mail domains on one listener. A name nobody lists, or none, gets cert/key.'),
      })
      .superRefine((t, ctx) => {
        const seen = new Map<string, number>();
        t.sni.forEach((entry, i) =>
          entry.names.forEach((name, j) => {
            const first = seen.get(name);
            if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['sni', i, 'names', j], message: `${name} is already served by tls.sni.${first}` });
            else seen.set(name, i);
          }),
        );
      })
      .optional()
      .describe('Certificate for starttls/implicit listeners (required when any listener uses TLS).'),
    backends: z.record(z.string(), backend).default({}).describe('Real mail servers, by name.'),
    store: z
      .discriminatedUnion('type', [
        z.strictObject({ type: z.literal('memory').describe('memory: in this process (one instance) | redis: shared by instances') }),
        z.strictObject({ type: z.literal('redis'), redis: redisStore }),
      ])
      .prefault({ type: 'memory' })
      .describe('Where counters live.'),
    limits,
    timeouts,
    admin: z
      .strictObject({
        listen: hostPort.default('127.0.0.1:9925').describe('Admin HTTP endpoint (API, /metrics, /healthz, /readyz).'),
        token: z.string().min(16, 'expected at least 16 characters').optional().describe('Bearer token for the API and /metrics; or MAILGATE_ADMIN_TOKEN, or tokenFile.'),
        tokenFile: z.string().optional().describe('File holding the bearer token (read at start and on reload).'),
      })
      .optional()
      .describe('Admin endpoint; absent: none. A token is mandatory unless it listens on loopback.'),
    policyServer: policyServer.optional(),
    crowdsec: crowdsec.optional(),
    firewall: firewall.optional(),
    alerts: alerts.optional(),
    history,
    nodes,
    notify: notify.optional(),
    log: z
      .strictObject({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info').describe('Minimum level written.'),
      })
      .prefault({})
      .describe('JSON log lines on stdout.'),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.listeners.length === 0 && !cfg.policyServer) ctx.addIssue({ code: 'custom', path: ['listeners'], message: 'expected at least one listener (or a policyServer)' });
    if (cfg.policyServer) checkPolicyServer(cfg, ctx);
    const names = new Set<string>();
    const addrs = new Set<string>();
    cfg.listeners.forEach((l, i) => {
      if (names.has(l.name)) ctx.addIssue({ code: 'custom', path: ['listeners', i, 'name'], message: `duplicate listener name "${l.name}"` });
      names.add(l.name);
      // port 0 asks the kernel for a free port each time, so it may repeat (tests use it)
      if (!l.listen.endsWith(':0') && addrs.has(l.listen)) ctx.addIssue({ code: 'custom', path: ['listeners', i, 'listen'], message: `address ${l.listen} used twice` });
      addrs.add(l.listen);
      if (!(l.backend in cfg.backends)) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'backend'], message: `no backend named "${l.backend}" (have: ${Object.keys(cfg.backends).join(', ') || 'none'})` });
      }
      if (l.tls !== 'none' && !cfg.tls) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'tls'], message: `tls: ${l.tls} needs the top-level tls: {cert, key} section` });
      }
      if (l.tls === 'none' && l.requireTls) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'requireTls'], message: 'requireTls: true needs tls: starttls or implicit' });
      }
      if (l.proxyProtocol && cfg.limits.trustedProxies.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'proxyProtocol'], message: 'proxyProtocol: true needs limits.trustedProxies (the load balancers allowed to send the header)' });
      }
    });
    for (const [name, b] of Object.entries(cfg.backends)) {
      if (b.proxyProtocol && b.forwardClientInfo === true) {
        ctx.addIssue({ code: 'custom', path: ['backends', name, 'forwardClientInfo'], message: 'choose one way to pass the client address: proxyProtocol or forwardClientInfo: true (auto sends nothing with proxyProtocol)' });
      }
    }
    if (cfg.admin && !cfg.admin.token && !cfg.admin.tokenFile && !isLoopbackHost(parseHostPort(cfg.admin.listen)!.host)) {
      ctx.addIssue({ code: 'custom', path: ['admin', 'token'], message: 'required when admin.listen is not a loopback address (or set tokenFile / MAILGATE_ADMIN_TOKEN)' });
    }
    if (cfg.store.type === 'redis' && !cfg.limits.keySecret) {
      ctx.addIssue({ code: 'custom', path: ['limits', 'keySecret'], message: 'required with store.type redis (instances must hash user names alike), or set MAILGATE_KEY_SECRET' });
    }
    const ruleNames = new Set<string>();
    cfg.limits.rules.forEach((r, i) => {
      if (ruleNames.has(r.name)) ctx.addIssue({ code: 'custom', path: ['limits', 'rules', i, 'name'], message: `duplicate rule name "${r.name}"` });
      ruleNames.add(r.name);
    });
  });

/** policyServer against the rest: an apiKey off loopback, nginx backends that exist and that
 *  nginx can reach (its mail proxy speaks plaintext to its backend). */
function checkPolicyServer(cfg: { policyServer?: z.output<typeof policyServer>; backends: Record<string, { tls: string }> }, ctx: z.core.$RefinementCtx): void {
  const ps = cfg.policyServer!;
  if (!ps.apiKey && !isLoopbackHost(parseHostPort(ps.listen)!.host)) {
    ctx.addIssue({ code: 'custom', path: ['policyServer', 'apiKey'], message: 'required when policyServer.listen is not a loopback address (or set MAILGATE_POLICY_API_KEY)' });
  }
  for (const [proto, name] of Object.entries(ps.nginx)) {
    const b = name === undefined ? undefined : cfg.backends[name];
    if (name !== undefined && !b) ctx.addIssue({ code: 'custom', path: ['policyServer', 'nginx', proto], message: `no backend named "${name}" (have: ${Object.keys(cfg.backends).join(', ') || 'none'})` });
    else if (b?.tls === 'implicit') ctx.addIssue({ code: 'custom', path: ['policyServer', 'nginx', proto], message: `backend "${name}" uses tls: implicit, but nginx's mail proxy talks plaintext to the server it is sent to` });
  }
}

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = Config['listeners'][number];
export type BackendConfig = Config['backends'][string];
/** One server of a backend, to dial: the backend's connection settings and one host:port. */
export type ServerTarget = Omit<BackendConfig, 'servers' | 'sticky' | 'healthCheck' | 'probeInterval'> & { host: string; port: number };
export type RuleConfig = Config['limits']['rules'][number];
export type LimitsConfig = Config['limits'];
export type StoreConfig = Config['store'];
export type RedisStoreConfig = Extract<StoreConfig, { type: 'redis' }>['redis'];
export type ProtocolName = (typeof PROTOCOLS)[number];
export type TlsMode = (typeof TLS_MODES)[number];
