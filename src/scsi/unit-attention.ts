import type { ItNexus } from './nexus.js';
import { Asc } from './sense.js';

/** Most unit attentions kept per I_T nexus; older ones are dropped first (SAM-5 §5.14 lets a device discard). */
const MAX_QUEUED = 8;

/**
 * Unit attention conditions of one logical unit, queued per I_T nexus (SAM-5 §5.14, SPC-4 §5.9).
 * Conditions are Asc codes (ASC << 8 | ASCQ); the sense key is always UNIT ATTENTION.
 */
export class UnitAttentions {
  private readonly byNexus = new Map<string, { nexus: ItNexus; queue: number[] }>();

  /**
   * The queue for a nexus. The first time the logical unit sees a nexus, it starts with
   * POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29h/00h): from that nexus' point of view the
   * LU has just come up (SAM-5 §6.3.1 names 29h/00h or 29h/01h for power on; 29h/00h is what
   * tgt and LIO report).
   */
  queueFor(nexus: ItNexus): number[] {
    let entry = this.byNexus.get(nexus.id);
    if (entry === undefined) {
      entry = { nexus, queue: [Asc.POWER_ON_RESET_OR_BUS_DEVICE_RESET] };
      this.byNexus.set(nexus.id, entry);
    }
    return entry.queue;
  }

  /** Remove and return the oldest pending condition, or undefined. */
  take(nexus: ItNexus): number | undefined {
    return this.byNexus.get(nexus.id)?.queue.shift();
  }

  pending(nexus: ItNexus): readonly number[] {
    return this.byNexus.get(nexus.id)?.queue ?? [];
  }

  /** Has this nexus ever addressed the logical unit? */
  knows(nexus: ItNexus): boolean {
    return this.byNexus.has(nexus.id);
  }

  *knownNexuses(): IterableIterator<ItNexus> {
    for (const entry of this.byNexus.values()) yield entry.nexus;
  }

  /** Establish `code` for every known nexus except `except`. */
  establish(code: number, except?: ItNexus): void {
    for (const [id, entry] of this.byNexus) {
      if (id !== except?.id) push(entry.queue, code);
    }
  }

  establishFor(nexus: ItNexus, code: number): void {
    push(this.queueFor(nexus), code);
  }
}

function push(q: number[], code: number): void {
  if ((code >> 8) === 0x29) {
    // A reset supersedes every condition established before it (they describe state the reset
    // discarded); report only the reset.
    q.length = 0;
    q.push(code);
    return;
  }
  if (q.includes(code)) return;
  if (q.length >= MAX_QUEUED) q.shift();
  q.push(code);
}
