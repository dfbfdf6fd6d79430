// Dovecot's auth policy (auth_policy_server_url): `allow` before authentication runs the limits
// as a proxied login would; `report` after it carries Dovecot's verdict, settled as a proxied
// login settles the backend's. Dovecot 2.3 asks `allow` a second time after a success (same
// session): that is the same login, answered from what the first allow decided. Pure of HTTP.
import { canonicalIp } from '../config/address.js';
import type { ProtocolName } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { checkLogin, settleLogin, type AuthDeps, type LoginCheck, type LoginSubject } from '../server/auth-path.js';

/** One policy request as Dovecot's default auth_policy_request_attributes send it. */
export interface DovecotRequest {
  login: string;
  remote: string;
  /** Dovecot's pwhash: hex of a hash of (nonce, login, password), truncated. */
  pwhash?: string;
  protocol: ProtocolName | 'other';
  /** Dovecot's login session id (the same for both allows and the report of one login). */
  session?: string;
  /** report only. */
  success?: boolean;
  policyReject?: boolean;
  /** Not sent by Dovecot 2.3; false would mean the password was never checked. */
  tried?: boolean;
}

export interface PolicyAnswer {
  status: number;
  msg: string;
}

/** Dovecot's service names onto the rules' protocols. */
const PROTOCOL: Record<string, ProtocolName> = { imap: 'imap', pop3: 'pop3', submission: 'smtp', smtp: 'smtp' };

const str = (v: unknown, max: number): string | undefined => (typeof v === 'string' && v.length <= max ? v : undefined);

/** The request, or what is wrong with it (answered 400). */
export function parseDovecot(body: unknown): DovecotRequest | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'expected a JSON object';
  const b = body as Record<string, unknown>;
  const login = str(b.login, 1024);
  if (login === undefined) return 'login: expected a string';
  const remote = canonicalIp(str(b.remote, 64));
  if (remote === null) return 'remote: expected the client IP address (%{rip})';
  const pwhash = b.pwhash === undefined || b.pwhash === '' ? undefined : str(b.pwhash, 128);
  if (pwhash !== undefined && !/^[0-9a-fA-F]+$/.test(pwhash)) return 'pwhash: expected hex';
  const session = str(b.session_id, 256) || undefined;
  const bool = (k: string) => (typeof b[k] === 'boolean' ? (b[k] as boolean) : undefined);
  const service = (str(b.protocol, 64) ?? '').toLowerCase();
  return { login, remote, pwhash: pwhash?.toLowerCase(), protocol: PROTOCOL[service] ?? 'other', session, success: bool('success'), policyReject: bool('policy_reject'), tried: bool('tried') };
}

export interface DovecotSettings {
  maxWaitMs: number;
  reportTimeoutMs: number;
}

interface Pending {
  check: Extract<LoginCheck, { kind: 'allowed' }>;
  protocol: string;
  /** The after-auth allow of this login came (it is answered, never counted). */
  afterAuth: boolean;
  at: number;
}

/** Logins allowed and waiting for their report; the oldest give back what they reserved when
 *  more are waiting (Dovecot would have to be losing every report). */
const MAX_PENDING = 100_000;
/** Tarpit delays owed to clients for their next attempt, at most this many. */
const MAX_DELAYS = 100_000;
/** A delay owed is forgotten after this: the next attempt is no longer a quick retry. */
const DELAY_HORIZON_MS = 60_000;

/** The login as the limits see it: pwhash stands in for the password (hint, dedupe); it is a
 *  hash of the user name too, so spray rules cannot use it. */
const subject = (r: DovecotRequest): LoginSubject => ({ protocol: r.protocol, clientIp: r.remote, user: Buffer.from(r.login, 'utf8'), secret: r.pwhash ? Buffer.from(r.pwhash, 'latin1') : undefined, secretIsUserHash: true });

const ALLOW: PolicyAnswer = { status: 0, msg: 'ok' };
const RECORDED: PolicyAnswer = { status: 0, msg: 'recorded' };

export class DovecotPolicy {
  private readonly pending = new Map<string, Pending>();
  private readonly delays = new Map<string, { ms: number; until: number }>();

  constructor(
    /** The running engine: rules, store, metrics (a reload swaps it). */
    private readonly deps: () => AuthDeps,
    private readonly settings: () => DovecotSettings,
    private readonly log: Logger,
  ) {}

  /** The login a request belongs to: its session, or without one its client. */
  private static key(r: DovecotRequest): string {
    return `${r.session ?? r.remote}\0${r.login}\0${r.pwhash ?? ''}`;
  }

  private logFor(r: DovecotRequest): Logger {
    return this.log.child({ mode: 'dovecot', session: r.session, ip: r.remote, protocol: r.protocol });
  }

  async allow(r: DovecotRequest): Promise<PolicyAnswer> {
    const deps = this.deps();
    const key = DovecotPolicy.key(r);
    const seen = this.pending.get(key);
    if (seen && !seen.afterAuth) {
      // Dovecot's check after a successful authentication: the login was let through already.
      seen.afterAuth = true;
      return ALLOW;
    }
    if (seen) await this.giveBack(key, seen); // its report never came; this is a new attempt
    const check = await checkLogin(deps, this.logFor(r), subject(r));
    if (check.kind === 'invalid') return { status: -1, msg: 'Invalid user name.' };
    if (check.kind === 'denied') return { status: -1, msg: 'Access denied.' };
    if (check.kind === 'limited') return { status: -1, msg: `Too many login attempts; try again in ${check.retryAfterSec} seconds.` };
    await this.hold(key, { check, protocol: r.protocol, afterAuth: false, at: deps.clock.now() });
    const owed = this.delays.get(deps.policy.clientOf(r.remote));
    if (!owed) return ALLOW;
    this.delays.delete(deps.policy.clientOf(r.remote));
    if (owed.until < deps.clock.now()) return ALLOW;
    // Dovecot waits this long before it checks the password: the tarpit of the last failure.
    return { status: Math.max(1, Math.ceil(Math.min(owed.ms, this.settings().maxWaitMs) / 1000)), msg: 'delayed' };
  }

  async report(r: DovecotRequest): Promise<PolicyAnswer> {
    const deps = this.deps();
    const key = DovecotPolicy.key(r);
    let p = this.pending.get(key);
    if (p) this.pending.delete(key);
    else {
      // Refused by a policy (ours counted it then): nothing was reserved, nothing to learn.
      if (r.policyReject) return RECORDED;
      // An allow this process never saw (a restart, auth_policy_check_before_auth = no): the
      // login still counts, as if it had been asked about.
      const check = await checkLogin(deps, this.logFor(r), subject(r));
      if (check.kind !== 'allowed') return RECORDED;
      p = { check, protocol: r.protocol, afterAuth: false, at: deps.clock.now() };
    }
    // Dovecot 2.3 reports an internal failure (a passdb that did not answer) as success:
    // false too; `tried: false` (a later Dovecot) says the password was never checked.
    const kind = r.tried === false || r.policyReject ? 'unavailable' : r.success ? 'ok' : 'rejected';
    const delayMs = await settleLogin(deps, p.check, p.protocol, kind);
    if (kind === 'rejected' && delayMs > 0) this.owe(deps.policy.clientOf(r.remote), delayMs, deps.clock.now());
    return RECORDED;
  }

  /** Gives back what allows without a report reserved, once reportTimeout has passed; returns
   *  how many. Called on a timer by the server (and by tests with their clock). */
  async sweep(): Promise<number> {
    const now = this.deps().clock.now();
    const { reportTimeoutMs } = this.settings();
    let n = 0;
    // Insertion order is age order: stop at the first one still in time.
    for (const [key, p] of this.pending) {
      if (now - p.at < reportTimeoutMs) break;
      await this.giveBack(key, p);
      n++;
    }
    for (const [client, d] of this.delays) if (d.until < now) this.delays.delete(client);
    return n;
  }

  get waiting(): number {
    return this.pending.size;
  }

  private async hold(key: string, p: Pending): Promise<void> {
    while (this.pending.size >= MAX_PENDING) {
      const [oldKey, old] = this.pending.entries().next().value!;
      await this.giveBack(oldKey, old);
    }
    this.pending.set(key, p);
  }

  /** An allow whose report will not come: nothing was learnt, its reservations go back. */
  private async giveBack(key: string, p: Pending): Promise<void> {
    this.pending.delete(key);
    const deps = this.deps();
    deps.metrics.policyRequests.inc({ mode: 'dovecot', answer: 'unreported' });
    try {
      await deps.policy.record(p.check.decision, 'unavailable');
    } catch (err) {
      this.log.error({ event: 'auth.record-failed', err: (err as Error).message }, 'could not give back a reservation');
    }
  }

  private owe(client: string, ms: number, now: number): void {
    if (this.delays.size >= MAX_DELAYS) this.delays.delete(this.delays.keys().next().value!);
    this.delays.delete(client); // re-inserted last: the map stays in expiry order
    this.delays.set(client, { ms, until: now + DELAY_HORIZON_MS });
  }
}
