// Connect-time block hints (limits/block-hints.ts) shared by the primary and every worker: a
// hint one process learns or drops is published, and the primary passes it on to the others,
// so a client whose ip block one worker saw is refused at connect by all of them, and an
// admin unblock in the primary reaches every worker. Still only hints: the store decides.
import type { Clock } from '../clock.js';
import { BlockHints } from '../limits/block-hints.js';
import type { HintNote } from './protocol.js';

export class SharedHints extends BlockHints {
  constructor(
    clock: Clock,
    private readonly publish: (n: HintNote) => void,
  ) {
    super(clock);
  }

  override note(key: string, forMs: number): void {
    super.note(key, forMs);
    this.publish({ op: 'note', key, forMs });
  }

  override forget(key: string): void {
    super.forget(key);
    this.publish({ op: 'forget', key });
  }

  /** What another process published: applied here, not published again. */
  apply(n: HintNote): void {
    if (n.op === 'note') super.note(n.key, n.forMs);
    else super.forget(n.key);
  }
}
