// What each backend advertises (IMAP CAPABILITY, POP3 CAPA, SMTP EHLO), probed at start and refreshed
// periodically, so the proxy never offers clients what the real server lacks. A failed probe
// keeps the last good answer; with none, nothing optional is advertised.
import type { ServerTarget } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { BackendReplay } from './types.js';

export interface Target {
  backend: string;
  /** The server asked: the backend's first (a pool's servers advertise alike). */
  server: ServerTarget;
  probeInterval: number;
  replay: BackendReplay;
  hostname: string;
}

/** Unknown yet: one shared empty list (callers memoise per list). */
const NONE: readonly string[] = Object.freeze([]);

export class CapabilityCache {
  private readonly known = new Map<string, readonly string[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private targets: Target[],
    private readonly log: Logger,
  ) {}

  /** Config reload: probe the new set in the background, keeping answers meanwhile. */
  retarget(targets: Target[]): void {
    this.targets = targets;
    void this.refresh();
  }

  /** Probe everything once (start-up does not fail on a backend that is down), then keep
   *  refreshing at the shortest configured interval. */
  async start(): Promise<void> {
    await this.refresh();
    const every = Math.min(...this.targets.map((t) => t.probeInterval));
    if (Number.isFinite(every)) {
      this.timer = setInterval(() => void this.refresh(), every);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  get(backend: string): readonly string[] {
    return this.known.get(backend) ?? NONE;
  }

  private async refresh(): Promise<void> {
    await Promise.all(
      this.targets.map(async (t) => {
        try {
          const caps = await t.replay.probeCapabilities(t.server, t.hostname);
          this.known.set(t.backend, caps);
          this.log.debug({ event: 'backend.probe', backend: t.backend, capabilities: caps }, 'backend capabilities');
        } catch (err) {
          this.log.warn({ event: 'backend.probe', backend: t.backend, error: (err as Error).message }, 'backend capability probe failed');
        }
      }),
    );
  }
}
