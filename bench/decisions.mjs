// The limiter benches' workload (limiter.mjs, limiter-ipc.mjs): N decisions, each a
// Policy.check then Policy.record (one in three a failure), from distinct addresses over 5,000
// users, `concurrency` at a time. To bench a baseline build, copy this file with limiter.mjs.

export const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

/** Runs the decisions; returns the seconds they took and each one's latency (ms, sorted). */
export async function runDecisions(policy, n, concurrency) {
  const lat = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const a = { protocol: 'imap', ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, user: `user${i % 5000}` };
      const s = process.hrtime.bigint();
      const d = await policy.check(a);
      await policy.record(d, i % 3 ? 'ok' : 'fail');
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((x, y) => x - y);
  return { secs, lat };
}
