// The one auth-attempt path for every protocol: validate the user, ask the limits, replay
// to the backend, settle the counters, log one line per decision. A coroutine the session
// drives: it yields a backend's challenge for the client and is resumed with the client's
// answer, so it never calls back into the session. Credentials are wiped here once the
// backend has seen them.
import type { Clock } from '../clock.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Decision, Outcome, Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { LoginOutcome, Metrics } from '../metrics/metrics.js';
import type { Tarpit } from '../limits/tarpit.js';
import type { AttackMode } from '../limits/attack-mode.js';
import type { FrontDoor } from './front-door.js';
import type { BackendPools } from '../backend/pool.js';
import type { BackendLoginResult, FinalBackendLoginResult, LoginContext } from '../backend/types.js';
import { checkUser } from '../protocols/identity.js';
import type { LoginResult } from '../protocols/protocol.js';
import { wipeCredentials, type Credentials } from '../protocols/sasl.js';
import type { ProtocolBinding } from '../registry.js';

export type AuthOutcome = Extract<BackendLoginResult, { kind: 'ok' }> | LoginResult;

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
}

export interface AuthRequest {
  listener: ListenerConfig;
  protocol: ProtocolBinding;
  clientIp: string;
  credentials: Credentials;
  context: LoginContext;
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
function answer(result: FinalBackendLoginResult): AuthOutcome {
  switch (result.kind) {
    case 'ok':
      return result;
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

export async function* authAttempt(deps: AuthDeps, log: Logger, req: AuthRequest): AuthAttempt {
  const { metrics, clock } = deps;
  const protocol = req.protocol.protocol.name;
  const count = (outcome: LoginOutcome) => metrics.loginAttempts.inc({ protocol, outcome });
  const t0 = clock.now();
  const creds = req.credentials;
  const user = checkUser(creds.user);
  const base = { event: 'auth.attempt', mechanism: creds.mechanism, user: user.display };
  try {
    if (!user.ok) {
      count('invalid');
      log.info({ ...base, outcome: 'invalid', reason: user.reason, latencyMs: clock.now() - t0 }, 'login refused: invalid user name');
      return { kind: 'invalid-user' };
    }
    deps.frontDoor?.record(req.clientIp);
    // The password is hashed with the key for the hint, spray and dedupe checks, then forgotten.
    const decision = await deps.policy.check({ protocol, ip: req.clientIp, user: user.canonical, password: creds.password });
    if (decision.kind === 'refuse') {
      count('limited');
      metrics.refusals.inc({ rule: decision.rule });
      const { rule, count: n, blocked, retryAfterSec } = decision;
      log.info({ ...base, outcome: 'limited', rule, count: n, blocked, retryAfterSec, latencyMs: clock.now() - t0 }, 'login limited');
      return { kind: 'limited', retryAfterSec };
    }
    if (decision.wouldRefuse) {
      metrics.wouldRefuse.inc({ rule: decision.wouldRefuse.rule });
      log.info({ ...base, event: 'auth.dry-run', ...decision.wouldRefuse }, 'dry run: this login would have been refused');
    }
    const tb = clock.now();
    let backendSec = 0;
    let challenged = false;
    let result: FinalBackendLoginResult;
    try {
      const first = await loginToPool(deps.pools, req, user.canonical);
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
    metrics.backendLoginSeconds.observe({ backend: req.listener.backend, result: v.policy }, backendSec);
    metrics.backendUp.set({ backend: req.listener.backend }, result.kind === 'unavailable' ? 0 : 1);
    count(v.metric);
    // Attack mode learns from the backend's verdicts only, never from mailgate's refusals.
    if (v.policy !== 'unavailable') deps.attackMode?.record(v.policy);
    const delayMs = await record(deps.policy, log, decision, v.policy);
    // Tarpit: the failure is answered later, with the same wording as any failure.
    if (v.policy === 'fail' && delayMs > 0) await deps.tarpit.wait(delayMs);
    log[v.level](
      {
        ...base,
        outcome: v.metric,
        trusted: decision.trusted || undefined,
        knownGood: decision.knownGood || undefined,
        // Whether the password matched the account's hint; never the hint itself.
        hintMatch: decision.hintMatch || undefined,
        shared: decision.shared || undefined,
        tarpitMs: delayMs || undefined,
        challenged: challenged || undefined,
        error: result.kind === 'unavailable' ? result.error : undefined,
        latencyMs: clock.now() - t0,
      },
      v.message,
    );
    return answer(result);
  } finally {
    wipeCredentials(creds);
  }
}

/** Settles the counters; a store that fails here costs the tarpit, never the login. */
async function record(policy: Policy, log: Logger, decision: Decision, outcome: Outcome): Promise<number> {
  try {
    return await policy.record(decision, outcome);
  } catch (err) {
    log.error({ event: 'auth.record-failed', err: (err as Error).message }, 'could not record outcome');
    return 0;
  }
}
