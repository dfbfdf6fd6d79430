// GC pauses (>= 5 ms, by kind: 1 scavenge, 4 mark-compact, 8 incremental) and event-loop lag
// (> 20 ms between 5-ms ticks) in this process, as times after the watch started: what a slow
// latency sample of the attack bench coincides with.
import { PerformanceObserver, performance } from 'node:perf_hooks';
/** Starts watching; the function returned stops and gives what was seen. */
export function watchStalls() {
  const t0 = performance.now();
  const events: { at: number; ms: number; what: string }[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.duration >= 5) events.push({ at: Math.round(e.startTime - t0), ms: +e.duration.toFixed(1), what: `gc${(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? ''}` });
  });
  obs.observe({ entryTypes: ['gc'] });
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - last > 20) events.push({ at: Math.round(last - t0), ms: +(now - last - 5).toFixed(1), what: 'lag' });
    last = now;
  }, 5);
  return () => {
    clearInterval(timer);
    obs.disconnect();
    return events;
  };
}
