// GET /api/v1/sessions and POST /api/v1/sessions/kick?user=…|ip=…: the spliced sessions this
// admin endpoint sees, and ending them on every instance. Validation and answers as data; who
// holds the sessions and how a kick travels (IPC, Redis) is the caller's (endpoints.ts).
import { canonicalIp } from '../config/address.js';
import { MAX_LISTED_SESSIONS, type KickTarget, type SessionList } from '../server/live-sessions.js';
import { AdminError, subject } from './api.js';

export interface SessionControl {
  /** The oldest first, at most `limit`, with the total. */
  list(limit: number): Promise<SessionList>;
  /** Ends the target's sessions here (this process, or every worker) and announces the kick to
   *  the other instances; how many ended here, and whether the announcement went out. */
  kick(target: KickTarget): Promise<{ ended: number; announced: boolean }>;
}

/** One user (named as logins name it) or one address, never both: a kick's reach is plain. */
export function kickTarget(q: URLSearchParams): KickTarget {
  const s = subject({ ip: q.get('ip'), user: q.get('user') });
  if (s.ip !== undefined && s.user !== undefined) throw new AdminError(400, 'Bad Request', 'give ip or user, not both');
  return s.user !== undefined ? { user: s.user } : { ip: canonicalIp(s.ip)! };
}

/** The answer to a sessions route, or null when the path is not one. */
export async function sessionsRoute(method: string | undefined, path: string, q: URLSearchParams, control: SessionControl | undefined): Promise<{ status: number; body: unknown } | null> {
  if (path !== '/api/v1/sessions' && path !== '/api/v1/sessions/kick') return null;
  if (!control) throw new AdminError(404, 'Not Found', 'no sessions in this process');
  if (path === '/api/v1/sessions') {
    if (method !== 'GET') throw new AdminError(405, 'Method Not Allowed', 'GET');
    const { total, sessions } = await control.list(MAX_LISTED_SESSIONS);
    return { status: 200, body: { total, listed: sessions.length, sessions } };
  }
  if (method !== 'POST') throw new AdminError(405, 'Method Not Allowed', 'POST');
  const target = kickTarget(q);
  return { status: 200, body: { ...target, ...(await control.kick(target)) } };
}
