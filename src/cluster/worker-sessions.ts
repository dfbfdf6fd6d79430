// In the primary: the workers' spliced sessions as one list, and a kick sent to every worker
// (the admin API's GET /api/v1/sessions and POST /api/v1/sessions/kick). A worker that does
// not answer within the deadline is left out of that answer.
import type { KickTarget, SessionList } from '../server/live-sessions.js';
import type { WorkerHandle } from './supervisor.js';

export function workerSessions(live: () => WorkerHandle[], deadlineMs: number) {
  return {
    async list(limit: number): Promise<SessionList> {
      const parts = await Promise.allSettled(live().map((h) => h.link.call('sessions', { limit }, deadlineMs)));
      const lists = parts.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
      const all = lists.flatMap((l) => l.sessions).sort((a, b) => a.since.localeCompare(b.since));
      return { total: lists.reduce((n, l) => n + l.total, 0), sessions: all.slice(0, limit) };
    },
    async kick(target: KickTarget): Promise<number> {
      const parts = await Promise.allSettled(live().map((h) => h.link.call('kick', target, deadlineMs)));
      return parts.reduce((n, p) => n + (p.status === 'fulfilled' ? p.value : 0), 0);
    },
  };
}
