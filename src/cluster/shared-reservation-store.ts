import { PR_SIDECAR, SidecarReservationStore, type CommitOutcome, type ReservationSnapshot, type ReservationStore } from '../scsi/reservation-store.js';
import { emptyPrState, type PrState } from '../scsi/pr-state.js';
import type { LunStateDir } from './state-dir.js';

/**
 * Persistent reservations of a LUN file shared by every server that serves it: `pr.json` in the
 * file's state directory, kept whatever APTPL says (the state records it), read on every load.
 * Each commit is a compare-and-swap under the directory's `pr` lock, so two servers never
 * overwrite each other's change; `afterCommit` then waits until the owner enforces it, so a PERSISTENT
 * RESERVE OUT completed through one node is in force through all. A state kept by 0.1.0 next to
 * the file (`<lun file>.pr.json`) is read until the first commit here.
 */
export class SharedReservationStore implements ReservationStore {
  readonly persistsThroughPowerLoss = true;
  private readonly inner: SidecarReservationStore;

  constructor(
    private readonly state: LunStateDir,
    private readonly afterCommit: (version: number) => Promise<void>,
  ) {
    this.inner = new SidecarReservationStore({
      readSidecar: async (name) => (await state.read(name)) ?? (name === PR_SIDECAR ? state.readLegacySidecar(name) : undefined),
      writeSidecar: (name, data) => state.writeSidecar(name, data),
    }, { keepAlways: true });
  }

  load(): Promise<ReservationSnapshot> {
    return this.inner.load();
  }

  /**
   * The first server to start after every server of the LU was down plays the power loss: a
   * state kept without APTPL is dropped (SPC-4 §5.13.2). Returns whether anything was dropped.
   */
  async dropUnlessPersistent(): Promise<boolean> {
    return this.state.withLock('pr', async () => {
      const cur = await this.inner.load();
      if (cur.state.aptpl || (cur.state.registrations.length === 0 && cur.state.reservation === null)) return false;
      const out = await this.inner.compareAndSwap(cur.version, { ...emptyPrState(), generation: cur.state.generation });
      return out.committed;
    });
  }

  async compareAndSwap(expected: number, next: PrState): Promise<CommitOutcome> {
    const outcome = await this.state.withLock('pr', () => this.inner.compareAndSwap(expected, next));
    if (outcome.committed) await this.afterCommit(outcome.version);
    return outcome;
  }
}
