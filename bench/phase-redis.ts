// Redis scripts per login through mailgate with the Redis store, counted exactly with MONITOR
// (commands the client sent; what a Lua script runs inside Redis is not counted). The store
// sends one hit script per subject (Cluster slot) together, then one settle script per subject
// together: two round trips whatever the count. The bench rules (services.ts' mailgateRules)
// span two subjects, the address and the user, so 4 scripts a login is 2 round trips (the
// limiter bench counts the round trips themselves, in process). Untimed: MONITOR slows Redis,
// so this never shares a run with the throughput figures.
import type { DovecotUser } from '../test/helpers/dovecot.js';
import { loadgen, loopbackSources, monitorRedis, round } from './lib.js';

export async function redisTripsPhase(port: number, redisPort: number, users: DovecotUser[], seconds: number) {
  const measure = async (wrongPassword: boolean) => {
    const mon = await monitorRedis(redisPort);
    const r = await loadgen({
      mode: 'logins', host: '127.0.0.1', port, tls: 'none', rate: 100, durationMs: seconds * 1000, users,
      // Failures from many addresses, so none reaches a failure limit (a refusal is cheaper).
      sources: wrongPassword ? loopbackSources(500, 2) : loopbackSources(8), wrongPassword,
    });
    const trips = await mon.stop();
    return { attempts: r.total as number, ok: r.ok as number, failed: r.fail as number, subjects: 2, roundTrips: trips.total, perAttempt: round(trips.total / r.total, 2), byCommand: trips.byCommand };
  };
  const ok = await measure(false);
  const failed = await measure(true);
  return { successfulLogin: ok, failedLogin: failed };
}
