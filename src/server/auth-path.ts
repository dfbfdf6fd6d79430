// The one auth-attempt path for every protocol: validate the user, ask the limits, replay
// to the backend, settle the counters, log one line per decision. Credentials are wiped
// here once the backend has seen them.
import type { Clock } from '../clock.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Tarpit } from '../limits/tarpit.js';
import type { BackendPools } from '../backend/pool.js';
import { checkUser } from '../protocols/identity.js';
import type { LoginResult } from '../protocols/protocol.js';
import type { BackendLoginResult, LoginContext } from '../backend/types.js';
import type { ProtocolBinding } from '../registry.js';
import { wipeCredentials, type Credentials } from '../protocols/sasl.js';

export type AuthOutcome = Extract<BackendLoginResult, { kind: 'ok' }> | LoginResult;

export interface AuthRequest {
  listener: ListenerConfig;
  protocol: ProtocolBinding;
  clientIp: string;
  credentials: Credentials;
  context: LoginContext;
  /** Sends a backend's challenge to the client and resolves with its one-line answer (null:
   *  the client is gone). Without it a challenge is answered as if the client had left. */
  relay?: (challenge: string) => Promise<string | null>;
}

/** Replays the login to the backend's servers in pool order; only a server that could not be
 *  reached at all (nothing was sent to it) makes way for the next one. */
async function loginToPool(pools: BackendPools, req: AuthRequest, user: string): Promise<BackendLoginResult> {
  let result: BackendLoginResult = { kind: 'unavailable', error: 'no server' };
  for (const server of pools.candidates(req.listener.backend, user)) {
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

export async function runAuth(deps: { policy: Policy; clock: Clock; metrics: Metrics; tarpit: Tarpit; pools: BackendPools }, log: Logger, req: AuthRequest): Promise<AuthOutcome> {
  const { metrics } = deps;
  const count = (outcome: string) => metrics.loginAttempts.inc({ protocol: req.protocol.protocol.name, outcome });
  const t0 = deps.clock.now();
  const { credentials: creds } = req;
  const user = checkUser(creds.user);
  const base = { event: 'auth.attempt', mechanism: creds.mechanism, user: user.display };
  try {
    if (!user.ok) {
      count('invalid');
      log.info({ ...base, outcome: 'invalid', reason: user.reason, latencyMs: deps.clock.now() - t0 }, 'login refused: invalid user name');
      return { kind: 'invalid-user' };
    }
    const decision = await deps.policy.check({ protocol: req.protocol.protocol.name, ip: req.clientIp, user: user.canonical });
    if (decision.kind === 'refuse') {
      count('limited');
      metrics.refusals.inc({ rule: decision.rule });
      log.info(
        { ...base, outcome: 'limited', rule: decision.rule, count: decision.count, blocked: decision.blocked, retryAfterSec: decision.retryAfterSec, latencyMs: deps.clock.now() - t0 },
        'login limited',
      );
      return { kind: 'limited', retryAfterSec: decision.retryAfterSec };
    }
    if (decision.wouldRefuse) {
      metrics.wouldRefuse.inc({ rule: decision.wouldRefuse.rule });
      log.info({ ...base, event: 'auth.dry-run', ...decision.wouldRefuse }, 'dry run: this login would have been refused');
    }
    // Keyed hash for stale-password dedupe, taken before the credentials are wiped.
    const fingerprint = deps.policy.fingerprint(decision, creds.password);
    const tb = process.hrtime.bigint();
    const first = await loginToPool(deps.pools, req, user.canonical);
    const backendSec = Number(process.hrtime.bigint() - tb) / 1e9;
    // RFC 7628 §3.2.2: a refused token may come back as an error challenge. The client's answer
    // goes to the backend, whose final reply ends the attempt (the client's time is not
    // backend latency, so it is left out of the histogram).
    const result = first.kind === 'challenge' ? await first.respond((await req.relay?.(first.challenge)) ?? null) : first;
    // A locked mailbox means the backend accepted the credentials: the limits count it as the
    // success it is (no failure, a known-good pair), the client hears the backend's refusal.
    const outcome = result.kind === 'ok' || result.kind === 'locked' ? 'ok' : result.kind === 'rejected' ? 'fail' : 'unavailable';
    const shown = result.kind === 'locked' ? 'locked' : outcome === 'unavailable' ? 'backend-error' : outcome;
    metrics.backendLoginSeconds.observe({ backend: req.listener.backend, result: outcome }, backendSec);
    metrics.backendUp.set({ backend: req.listener.backend }, result.kind === 'unavailable' ? 0 : 1);
    count(shown);
    const delayMs = await deps.policy.record(decision, outcome, fingerprint).catch((err: Error) => {
      log.error({ event: 'auth.attempt', err: err.message }, 'could not record outcome');
      return 0;
    });
    // Tarpit: the failure is answered later, with the same wording as any failure.
    if (result.kind === 'rejected' && delayMs > 0) await deps.tarpit.wait(delayMs);
    const fields = {
      ...base,
      outcome: shown,
      trusted: decision.trusted || undefined,
      knownGood: decision.knownGood || undefined,
      tarpitMs: delayMs || undefined,
      challenged: first.kind === 'challenge' || undefined,
      latencyMs: deps.clock.now() - t0,
    };
    if (result.kind === 'unavailable') {
      log.warn({ ...fields, error: result.error }, 'backend unavailable');
      return { kind: 'unavailable' };
    }
    if (result.kind === 'locked') {
      log.info(fields, 'login ok, but the backend cannot open the mailbox now');
      return { kind: 'unavailable', reply: result.clientReply };
    }
    log.info(fields, result.kind === 'ok' ? 'login ok' : 'login failed');
    return result.kind === 'ok' ? result : { kind: 'rejected', reply: result.clientReply };
  } finally {
    wipeCredentials(creds);
  }
}
