// Waiting on a condition in tests: polled, bounded, never a bare sleep on wall time.

/** Polls `cond` every 20 ms until it holds (bounded). For conditions, never for time. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
