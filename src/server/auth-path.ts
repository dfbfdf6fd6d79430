// The one auth-attempt path for every protocol: validate the user, ask the limits, replay
// to the backend, settle the counters, log one line per decision. A coroutine the session
// drives: it yields a backend's challenge for the client and is resumed with the client's
// answer, so it never calls back into the session. Credentials are wiped here once the
// backend has seen them.
import type { Clock } from '../clock.js';
import type { ProtocolName } from '../config/schema.js';
import type { Decision, Outcome, Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { LoginOutcome, Metrics } from '../metrics/metrics.js';
import type { Tarpit } from '../limits/tarpit.js';
import type { AttackMode } from '../limits/attack-mode.js';
import type { FrontDoor } from './front-door.js';
import type { BackendPools } from '../backend/pool.js';
import type { BackendLoginResult, FinalBackendLoginResult, LoginContext } from '../backend/types.js';
import type { Groups } from '../groups/groups.js';
import type { AccountHistory } from '../limits/history.js';
import type { RecordRow } from '../stores/store.js';
import { imapAlert } from '../protocols/imap/replies.js';
import { checkUser } from '../protocols/identity.js';
import type { LoginResult } from '../protocols/protocol.js';
import { wipeCredentials, type Credentials } from '../protocols/sasl.js';
import type { ProtocolBinding } from '../registry.js';

/** ok: the backend's session, and the canonical user name it logged in as. */
export type AuthOutcome = (Extract<BackendLoginResult, { kind: 'ok' }> & { user: string }) | LoginResult;

/** One login as the limits see it, whoever carries it: a proxied client, Dovecot's policy
 *  request, nginx's auth_http. */
export interface LoginSubject {
  /** The rules' protocol name; 'other' for a service no rule names (Dovecot's sieve). */
  protocol: ProtocolName | 'other';
  clientIp: string;
  user: Buffer;
  /** The password, or (Dovecot) its truncated hash; only ever hashed with the key. */
  secret?: Buffer;
  /** The secret is a per-user hash (Dovecot's pwhash): no spray rule can use it. */
  secretIsUserHash?: boolean;
  /** The log line's mechanism field, when known. */
  mechanism?: string;
  /** IMAP: the client's ID name, for the login history. */
  clientName?: string;
}

/** What checkLogin found: refused (counted and logged), or allowed with what settleLogin needs. */
export type LoginCheck =
  | { kind: 'invalid' }
  /** limits.deniedNetworks (a proxied client never gets this far). */
  | { kind: 'denied' }
  | { kind: 'limited'; rule: string; retryAfterSec: number }
  | { kind: 'allowed'; decision: Decision; user: string; log: Logger; base: Record<string, unknown>; t0: number; facts: { ip: string; protocol: string; print?: string; client?: string; asn?: number; country?: string } };

export interface AuthDeps {
  policy: Policy;
  clock: Clock;
  metrics: Metrics;
  tarpit: Tarpit;
  pools: BackendPools;
  /** Learns the global failure rate from the backend's verdicts (limits/attack-mode.ts). */
  attackMode?: Pick<AttackMode, 'record'>;
  /** Watches whether most logins come from one private address (a balancer without PROXY). */
  frontDoor?: Pick<FrontDoor, 'record'>;
  /** limits.deniedNetworks, for logins no connection was admitted for (policy server). */
  isDenied?(address: string): boolean;
  /** Address groups of the running config (limits.groups, geoip, dnsbl). */
  groups?: Groups;
  /** Login history and account events (history, notify). */
  history?: AccountHistory;
}

export interface AuthRequest {
  /** The backend (a key of backends) that verifies the login. */
  backend: string;
  protocol: ProtocolBinding;
  clientIp: string;
  credentials: Credentials;
  context: LoginContext;
  /** Return a failure's tarpit delay in the outcome (rejected.tarpitMs) instead of waiting it
   *  out here: nginx waits it itself (Auth-Wait). */
  deferTarpit?: boolean;
}

/** What the attempt asks of the session while it runs: send this challenge to the client and
 *  resume with its one-line answer (null: the client is gone). */
export interface RelayRequest {
  relay: string;
}

export type AuthAttempt = AsyncGenerator<RelayRequest, AuthOutcome, string | null>;

interface Verdict {
  /** What the limits count: a locked mailbox had good credentials, a backend that could not
   *  answer is nobody's failure. */
  policy: Outcome;
  metric: LoginOutcome;
  message: string;
  level: 'info' | 'warn';
}

/** The one translation of a backend result into what limits count, metrics show and logs say. */
const VERDICT = {
  ok: { policy: 'ok', metric: 'ok', message: 'login ok', level: 'info' },
  locked: { policy: 'ok', metric: 'locked', message: 'login ok, but the backend cannot open the mailbox now', level: 'info' },
  rejected: { policy: 'fail', metric: 'fail', message: 'login failed', level: 'info' },
  unavailable: { policy: 'unavailable', metric: 'backend-error', message: 'backend unavailable', level: 'warn' },
} as const satisfies Record<FinalBackendLoginResult['kind'], Verdict>;

/** What the session's machine is told, per backend result (the ok socket goes to the splice). */
function answer(result: FinalBackendLoginResult, user: string): AuthOutcome {
  switch (result.kind) {
    case 'ok':
      return { ...result, user };
    case 'rejected':
      return { kind: 'rejected', reply: result.clientReply };
    // The client hears the backend's own words; the attempt is not used up.
    case 'locked':
      return { kind: 'unavailable', reply: result.clientReply };
    case 'unavailable':
      return { kind: 'unavailable' };
  }
}

/** Replays the login to the backend's servers in pool order; only a server that could not be
 *  reached at all (nothing was sent to it) makes way for the next one. */
async function loginToPool(pools: BackendPools, req: AuthRequest, user: string): Promise<BackendLoginResult> {
  let result: BackendLoginResult = { kind: 'unavailable', error: 'no server' };
  for (const server of pools.candidates(req.backend, user)) {
    result = await req.protocol.replay.login(server, req.credentials, req.context);
    if (result.kind === 'unavailable' && result.unreachable) {
      pools.markDown(server, result.error);
      continue;
    }
    pools.markUp(server);
    return result;
  }
  return result;
}

/** The limits' half before the verdict: validate the user, ask the rules; a refusal is counted
 *  and logged here. */
export async function checkLogin(deps: AuthDeps, log: Logger, s: LoginSubject): Promise<LoginCheck> {
  const { metrics, clock } = deps;
  const t0 = clock.now();
  const user = checkUser(s.user);
  const base: Record<string, unknown> = { event: 'auth.attempt', mechanism: s.mechanism, user: user.display };
  const count = (outcome: LoginOutcome) => metrics.loginAttempts.inc({ protocol: s.protocol, outcome });
  if (!user.ok) {
    count('invalid');
    log.info({ ...base, outcome: 'invalid', reason: user.reason, latencyMs: clock.now() - t0 }, 'login refused: invalid user name');
    return { kind: 'invalid' };
  }
  if (deps.isDenied?.(s.clientIp)) {
    count('limited');
    log.info({ ...base, outcome: 'limited', reason: 'limits.deniedNetworks', latencyMs: clock.now() - t0 }, 'login refused: denied network');
    return { kind: 'denied' };
  }
  deps.frontDoor?.record(s.clientIp);
  // Blocklists were asked at connect; a trusted client needs no groups.
  const groups = deps.groups?.active && !deps.policy.isTrusted(s.clientIp) ? await deps.groups.of(s.clientIp) : undefined;
  if (groups) Object.assign(base, { groups: groups.names.length ? groups.names : undefined, asn: groups.asn, country: groups.country });
  // The password is hashed with the key for the hint and spray checks; a failure's dedupe
  // fingerprint is hashed when it is settled (before authAttempt wipes the credentials).
  const decision = await deps.policy.check({ protocol: s.protocol, ip: s.clientIp, user: user.canonical, password: s.secret, sprayable: !s.secretIsUserHash, groups });
  for (const group of groups?.names ?? []) metrics.groupDecisions.inc({ group, result: decision.kind });
  if (decision.kind === 'refuse') {
    count('limited');
    metrics.refusals.inc({ rule: decision.rule });
    const { rule, count: n, blocked, retryAfterSec } = decision;
    log.info({ ...base, outcome: 'limited', rule, count: n, blocked, retryAfterSec, latencyMs: clock.now() - t0 }, 'login limited');
    return { kind: 'limited', rule, retryAfterSec };
  }
  if (decision.wouldRefuse) {
    metrics.wouldRefuse.inc({ rule: decision.wouldRefuse.rule });
    log.info({ ...base, event: 'auth.dry-run', ...decision.wouldRefuse }, 'dry run: this login would have been refused');
  }
  const facts = { ip: s.clientIp, protocol: s.protocol, print: deps.history?.print(user.canonical, s.secret), client: s.clientName, asn: groups?.asn, country: groups?.country };
  return { kind: 'allowed', decision, user: user.canonical, log, base, t0, facts };
}

/** The limits' half after the verdict: count it, feed attack mode, settle the counters and
 *  log the one line of the attempt. Returns the tarpit delay of a failure (0 otherwise). */
export async function settleLogin(deps: AuthDeps, check: Extract<LoginCheck, { kind: 'allowed' }>, protocol: string, kind: FinalBackendLoginResult['kind'], extra: Record<string, unknown> = {}): Promise<number> {
  const v = VERDICT[kind];
  const { decision, log } = check;
  deps.metrics.loginAttempts.inc({ protocol, outcome: v.metric });
  // Attack mode learns from the backend's verdicts only, never from mailgate's refusals.
  if (v.policy !== 'unavailable') deps.attackMode?.record(v.policy);
  const facts = v.policy !== 'unavailable' ? { user: check.user, ...check.facts, result: v.policy } : undefined;
  // The history row goes with the settle where the store can carry it (history.ts' row()).
  const row = facts && deps.history?.row(facts);
  const delayMs = await record(deps.policy, log, decision, v.policy, row);
  if (facts) deps.history?.record(facts, row);
  const allowed = decision.kind === 'allow' ? decision : undefined;
  log[v.level](
    {
      ...check.base,
      outcome: v.metric,
      trusted: allowed?.trusted || undefined,
      knownGood: allowed?.knownGood || undefined,
      // Whether the password matched the account's hint; never the hint itself.
      hintMatch: allowed?.hintMatch || undefined,
      shared: allowed?.shared || undefined,
      tarpitMs: (v.policy === 'fail' && delayMs) || undefined,
      ...extra,
      latencyMs: deps.clock.now() - check.t0,
    },
    v.message,
  );
  return delayMs;
}

/** What a client of a denied network is told to wait (it will be refused again). */
const DENIED_RETRY_SEC = 3600;

export async function* authAttempt(deps: AuthDeps, log: Logger, req: AuthRequest): AuthAttempt {
  const { metrics, clock } = deps;
  const protocol = req.protocol.protocol.name;
  const creds = req.credentials;
  try {
    const check = await checkLogin(deps, log, { protocol, clientIp: req.clientIp, user: creds.user, secret: creds.password, mechanism: creds.mechanism, clientName: req.context.clientName });
    if (check.kind === 'invalid') return { kind: 'invalid-user' };
    // Admission turned a denied client away at connect; a policy-server login is refused here.
    if (check.kind === 'denied') return { kind: 'limited', retryAfterSec: DENIED_RETRY_SEC };
    if (check.kind === 'limited') return { kind: 'limited', retryAfterSec: check.retryAfterSec };
    const tb = clock.now();
    let backendSec = 0;
    let challenged = false;
    let result: FinalBackendLoginResult;
    try {
      const first = await loginToPool(deps.pools, req, check.user);
      backendSec = (clock.now() - tb) / 1000;
      // RFC 7628 §3.2.2: a refused token may come back as an error challenge. The client's answer
      // goes to the backend, whose final reply ends the attempt (the client's time is not
      // backend latency, so it is left out of the histogram).
      challenged = first.kind === 'challenge';
      result = first.kind === 'challenge' ? await first.respond(yield { relay: first.challenge }) : first;
    } catch (err) {
      // Only a MailgateError means the backend is unavailable; anything else is our bug. The
      // client still gets the temporary failure, and nothing is counted against anyone.
      log.error({ event: 'auth.bug', err: (err as Error).stack ?? String(err) }, 'login replay failed with an internal error');
      result = { kind: 'unavailable', error: 'internal error' };
    }
    const v = VERDICT[result.kind];
    metrics.backendLoginSeconds.observe({ backend: req.backend, result: v.policy }, backendSec);
    metrics.backendUp.set({ backend: req.backend }, result.kind === 'unavailable' ? 0 : 1);
    const extra = { challenged: challenged || undefined, error: result.kind === 'unavailable' ? result.error : undefined };
    const delayMs = await settleLogin(deps, check, protocol, result.kind, extra);
    // RFC 9051 §7.1: an account alert rides before the backend's tagged OK, once. nginx
    // (deferTarpit) answers the client itself: it keeps the alert for a login it can show.
    if (result.kind === 'ok' && protocol === 'imap' && !req.deferTarpit) {
      const alert = await deps.history?.takeAlert(check.user);
      if (alert) result = { ...result, clientReply: Buffer.concat([Buffer.from(imapAlert(alert), 'latin1'), result.clientReply]) };
    }
    const out = answer(result, check.user);
    if (v.policy !== 'fail' || delayMs <= 0) return out;
    // Tarpit: the failure is answered later, with the same wording as any failure.
    if (req.deferTarpit) return { ...(out as Extract<LoginResult, { kind: 'rejected' }>), tarpitMs: delayMs };
    await deps.tarpit.wait(delayMs);
    return out;
  } finally {
    wipeCredentials(creds);
  }
}

/** Settles the counters; a store that fails here costs the tarpit, never the login. */
async function record(policy: Policy, log: Logger, decision: Decision, outcome: Outcome, row?: RecordRow): Promise<number> {
  try {
    return await policy.record(decision, outcome, row);
  } catch (err) {
    log.error({ event: 'auth.record-failed', err: (err as Error).message }, 'could not record outcome');
    return 0;
  }
}
