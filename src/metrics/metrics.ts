// Prometheus metrics (prom-client), one registry per proxy. Labels are closed sets
// (protocol, outcome, rule, listener, state, backend): never a user name, address or secret.
// In worker mode the primary sums every process's registry (AggregatorRegistry); a gauge that
// a sum would falsify says how it aggregates (`aggregator`: min for "is it up", max for what
// only the primary or any one worker knows).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AttackModeStatus } from '../limits/attack-mode.js';

export type Metrics = ReturnType<typeof createMetrics>;

/** The `outcome` label of mailgate_login_attempts_total: a closed set. */
export type LoginOutcome = 'ok' | 'fail' | 'locked' | 'backend-error' | 'invalid' | 'limited';

export interface MetricsSources {
  defaultMetrics?: boolean;
  storeHealth?: () => { up: boolean; fallbacks: number };
  /** The attack-mode detector's status, read at each scrape (which also lets it leave on time). */
  attackMode?: () => AttackModeStatus | null;
  /** Whether one private address sends most logins now (server/front-door.ts). */
  frontDoor?: () => boolean;
}

export function createMetrics(opts: MetricsSources = {}) {
  const health = opts.storeHealth ?? (() => ({ up: true, fallbacks: 0 }));
  const attack = opts.attackMode ?? (() => null);
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'mailgate_' });
  const r = [registry];
  return {
    registry,
    loginAttempts: new Counter({
      name: 'mailgate_login_attempts_total',
      help: 'Login attempts by protocol and outcome (ok, fail, limited, backend-error, invalid, locked: a POP3 [IN-USE] mailbox after good credentials).',
      labelNames: ['protocol', 'outcome'] as const,
      registers: r,
    }),
    refusals: new Counter({ name: 'mailgate_refusals_total', help: 'Logins (or, for blocked IPs, connections) refused by a limit rule.', labelNames: ['rule'] as const, registers: r }),
    connectionsRefused: new Counter({
      name: 'mailgate_connections_refused_total',
      help: 'Connections turned away at connect: blocked (an ip rule block), per-ip or total (limits.connections), denied (limits.deniedNetworks), crowdsec (a CrowdSec decision).',
      labelNames: ['listener', 'reason'] as const,
      registers: r,
    }),
    wouldRefuse: new Counter({ name: 'mailgate_dry_run_refusals_total', help: 'Logins a rule would have refused (limits.mode: dry-run).', labelNames: ['rule'] as const, registers: r }),
    connections: new Gauge({ name: 'mailgate_connections', help: 'Open client connections by listener and state (preauth, spliced).', labelNames: ['listener', 'state'] as const, registers: r }),
    backendLoginSeconds: new Histogram({
      name: 'mailgate_backend_login_seconds',
      help: 'Backend login replay duration, connect to verdict.',
      labelNames: ['backend', 'result'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    backendUp: new Gauge({
      name: 'mailgate_backend_up',
      help: '1 when the last login reached the backend (it answered, whatever its verdict), 0 when it could not be reached or did not answer (in any worker).',
      labelNames: ['backend'] as const,
      registers: r,
      aggregator: 'min',
    }),
    storeUp: new Gauge({
      name: 'mailgate_store_up',
      help: '1 when the limit store answers, 0 during a fallback (in any worker).',
      registers: r,
      aggregator: 'min',
      collect() {
        this.set(health().up ? 1 : 0);
      },
    }),
    storeFallbacks: new Gauge({
      name: 'mailgate_store_fallbacks_total',
      help: 'Store operations answered by the onError fallback (a counter, read from the store).',
      registers: r,
      collect() {
        this.set(health().fallbacks);
      },
    }),
    sessionsKicked: new Counter({ name: 'mailgate_sessions_kicked_total', help: 'Spliced sessions ended by an admin kick (POST /api/v1/sessions/kick).', registers: r }),
    splicedBytes: new Counter({ name: 'mailgate_spliced_bytes_total', help: 'Bytes moved after login, by direction (in: client to backend).', labelNames: ['listener', 'direction'] as const, registers: r }),
    tlsFailures: new Counter({ name: 'mailgate_tls_handshake_failures_total', help: 'Client TLS handshakes that failed or timed out.', labelNames: ['listener'] as const, registers: r }),
    tlsHandshakes: new Counter({
      name: 'mailgate_tls_handshakes_total',
      help: 'Client TLS handshakes completed, by protocol version (TLSv1 … TLSv1.3: who still needs an old one before tls.minVersion goes up) and whether the client resumed a session (a ticket: no certificate sent).',
      labelNames: ['listener', 'version', 'resumed'] as const,
      registers: r,
    }),
    starttlsInjections: new Counter({ name: 'mailgate_starttls_injection_total', help: 'Plaintext pipelined after STARTTLS/STLS and discarded.', labelNames: ['listener'] as const, registers: r }),
    attackMode: new Gauge({
      name: 'mailgate_attack_mode',
      help: '1 while attack mode is on (automatic or forced): logins from unknown (user, network) pairs without a matching password hint are refused without the backend.',
      registers: r,
      aggregator: 'max',
      collect() {
        this.set(attack()?.active ? 1 : 0);
      },
    }),
    attackModeForced: new Gauge({
      name: 'mailgate_attack_mode_forced',
      help: 'Attack mode forced by an operator (admin API): 1 on the mode forced (on or off), both 0 while it is automatic.',
      labelNames: ['mode'] as const,
      registers: r,
      aggregator: 'max',
      collect() {
        const forced = attack()?.forced ?? null;
        for (const mode of ['on', 'off'] as const) this.set({ mode }, forced === mode ? 1 : 0);
      },
    }),
    loginFailureRate: new Gauge({
      name: 'mailgate_login_failures_per_minute',
      help: 'Logins the backend rejected per minute (all workers), over limits.attackMode.window: what attack mode compares with its baseline.',
      registers: r,
      aggregator: 'max',
      collect() {
        this.set(attack()?.failuresPerMin ?? 0);
      },
    }),
    loginFailureBaseline: new Gauge({
      name: 'mailgate_login_failures_baseline_per_minute',
      help: "Attack mode's learned normal of rejected logins per minute (frozen while attack mode is on); it enters above limits.attackMode.factor times this and minFailuresPerMin.",
      registers: r,
      aggregator: 'max',
      collect() {
        this.set(attack()?.baselinePerMin ?? 0);
      },
    }),
    frontDoorSingleSource: new Gauge({
      name: 'mailgate_front_door_single_source',
      help: '1 while most logins come from one private address (a load balancer without PROXY protocol, or a webmail on this host): every client behind it shares its limits. The address is in the auth.single-source log line.',
      registers: r,
      aggregator: 'max',
      collect() {
        this.set(opts.frontDoor?.() ? 1 : 0);
      },
    }),
    policyRequests: new Counter({
      name: 'mailgate_policy_requests_total',
      help: "Policy-server requests by mode (dovecot, nginx) and answer: allow, delay (a tarpit), refuse, fail (nginx: the backend said no), report, unavailable (nginx: no backend verdict), late (the store did not answer in policyServer.timeout), unreported (Dovecot: an allow whose report never came), bad-request, unauthorized.",
      labelNames: ['mode', 'answer'] as const,
      registers: r,
    }),
    policySeconds: new Histogram({
      name: 'mailgate_policy_request_seconds',
      help: 'Policy-server answer time by mode (nginx: the backend login included).',
      labelNames: ['mode'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: r,
    }),
    groupDecisions: new Counter({
      name: 'mailgate_group_decisions_total',
      help: 'Login decisions for clients in an address group (limits.groups), by group and result (allow, refuse): a client in several groups counts in each.',
      labelNames: ['group', 'result'] as const,
      registers: r,
    }),
    dnsblQueries: new Counter({
      name: 'mailgate_dnsbl_queries_total',
      help: 'DNS blocklist queries sent, by zone and result: listed, clean (not listed), refused (the list answered 127.255.255.x), timeout, error (no answer: SERVFAIL, unreachable server).',
      labelNames: ['zone', 'result'] as const,
      registers: r,
    }),
    dnsblSeconds: new Histogram({
      name: 'mailgate_dnsbl_query_seconds',
      help: 'DNS blocklist query time by zone (queries answered from the cache are not counted).',
      labelNames: ['zone'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r,
    }),
    crowdsecDecisions: new Gauge({ name: 'mailgate_crowdsec_decisions', help: 'CrowdSec decisions held by the bouncer (crowdsec.bouncerKey), as of the last pull.', registers: r, aggregator: 'max' }),
    crowdsecSignals: new Counter({
      name: 'mailgate_crowdsec_signals_total',
      help: "mailgate's blocks sent to the CrowdSec LAPI (crowdsec.machine), by action (add: an alert with its decision, delete) and result (ok, error).",
      labelNames: ['action', 'result'] as const,
      registers: r,
    }),
    sendingRefused: new Counter({
      name: 'mailgate_sending_refused_total',
      help: 'Submission commands (MAIL, RCPT) refused with 451 4.7.1 by limits.sending, by limit (messagesPerDay, recipientsPerDay, newRecipientsPerDay).',
      labelNames: ['limit'] as const,
      registers: r,
    }),
    sendingMessages: new Counter({ name: 'mailgate_sending_messages_total', help: 'Messages the backend accepted from authenticated submission sessions with limits.sending (counted toward the limits).', registers: r }),
    sendingStoreErrors: new Counter({
      name: 'mailgate_sending_store_errors_total',
      help: 'limits.sending store calls that failed or were late, by op: check (the command was let through uncounted), count (an accepted message not counted).',
      labelNames: ['op'] as const,
      registers: r,
    }),
    smtpTrackerEvents: new Counter({
      name: 'mailgate_smtp_tracker_events_total',
      help: 'Submission tracker events, by event: lost (the tracker stopped following a session: its messages pass uncounted), unknown (a command it does not know, passed through untouched).',
      labelNames: ['event'] as const,
      registers: r,
    }),
    reloads: new Counter({ name: 'mailgate_config_reloads_total', help: 'Config reloads by result (ok, invalid).', labelNames: ['result'] as const, registers: r }),
  };
}
