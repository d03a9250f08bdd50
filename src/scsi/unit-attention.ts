import type { ItNexus } from './nexus.js';
import { Asc } from './sense.js';

/** Most unit attentions kept per I_T nexus; older ones are dropped first (SAM-5 §5.14 lets a device discard). */
const MAX_QUEUED = 8;

/**
 * How many lost I_T nexuses (LogicalUnit.nexusLost) keep their unit attention state. Beyond it the
 * longest-lost one is forgotten: if it returns it is a nexus the LU has never seen and gets the
 * power-on UA 29h/00h instead of I_T NEXUS LOSS OCCURRED 29h/07h (both tell it to re-check the
 * LU; SAM-5 §6.3.1, §6.3.4). A nexus that has not been lost is never forgotten.
 */
export const MAX_REMEMBERED_LOST_NEXUSES = 1024;

/**
 * Unit attention conditions of one logical unit, queued per I_T nexus (SAM-5 §5.14, SPC-4 §5.9).
 * Conditions are Asc codes (ASC << 8 | ASCQ); the sense key is always UNIT ATTENTION.
 */
export class UnitAttentions {
  private readonly byNexus = new Map<string, { nexus: ItNexus; queue: number[] }>();
  /** Ids of lost nexuses still in `byNexus`, longest-lost first (a Set keeps insertion order). */
  private readonly lost = new Set<string>();

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
    } else if (this.lost.size !== 0) {
      this.lost.delete(nexus.id); // it is back
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

  /**
   * The transport lost `nexus`: if it has addressed the LU it gets I_T NEXUS LOSS OCCURRED
   * (SAM-5 §6.3.4) should it return, and joins the bounded set of remembered lost nexuses.
   */
  nexusLost(nexus: ItNexus): void {
    const entry = this.byNexus.get(nexus.id);
    if (entry === undefined) return;
    push(entry.queue, Asc.I_T_NEXUS_LOSS_OCCURRED);
    this.lost.delete(nexus.id);
    this.lost.add(nexus.id);
    if (this.lost.size > MAX_REMEMBERED_LOST_NEXUSES) {
      const oldest = this.lost.values().next().value!;
      this.lost.delete(oldest);
      this.byNexus.delete(oldest);
    }
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
