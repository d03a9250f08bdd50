/**
 * Where a logical unit's persistent reservation state lives. Every PERSISTENT RESERVE OUT reads
 * the current version, computes the next state from it and commits with compare-and-swap; on a
 * version mismatch it reads again and recomputes. So several device servers sharing one store
 * (the same LUN served through several nodes) never overwrite each other's change, and each sees
 * the others' through load().
 *
 * APTPL (SPC-4 §5.13.2) decides only what survives a power loss. The state records it, so a store
 * shared by several servers can keep the state whatever its value (`keepAlways`): the power-loss
 * rule then belongs to whoever starts the first server after one (it drops a state with
 * aptpl = false). A single server keeps exactly the SPC-4 behaviour: the state is on disk only
 * while APTPL = 1.
 */
import type { BlockBackend } from '../backend/block-backend.js';
import { decodePrState, encodePrState } from './pr-state-codec.js';
import { emptyPrState, type PrState } from './pr-state.js';

export interface ReservationSnapshot {
  /** Store version: changes with every committed state (unlike PRgeneration, also on RESERVE/RELEASE). */
  readonly version: number;
  /** Never modified: a change is made on a copy (clonePrState) and committed. */
  readonly state: PrState;
}

/** compareAndSwap's answer: the new version, or `stale` when the stored version was no longer `expected`. */
export type CommitOutcome = { readonly committed: true; readonly version: number } | { readonly committed: false };

export interface ReservationStore {
  /** Whether a state with APTPL = 1 survives a power loss (PTPL_C, SPC-4 §6.15.4). */
  readonly persistsThroughPowerLoss: boolean;
  /** The current state and its version. Throws when the stored state cannot be read or trusted. */
  load(): Promise<ReservationSnapshot>;
  /**
   * Make `next` the state if the version is still `expected` (atomically with respect to every
   * other commit to the same store). Throws when the state cannot be stored (nothing changed).
   */
  compareAndSwap(expected: number, next: PrState): Promise<CommitOutcome>;
}

/** The sidecar file name persistent reservations are kept in (next to the LUN file). */
export const PR_SIDECAR = 'pr.json';

export type SidecarFiles = Pick<BlockBackend, 'readSidecar' | 'writeSidecar'>;

export interface SidecarStoreOptions {
  /** Keep the state in the sidecar whatever APTPL says (a store shared by several servers). Default false. */
  readonly keepAlways?: boolean;
}

/** Commits in progress per sidecar owner: stores over the same files take turns (compare-and-swap). */
const commitQueues = new WeakMap<SidecarFiles, Promise<unknown>>();

/**
 * A reservation store in the backend's "pr.json" sidecar, written atomically (write, fsync,
 * rename). Without `keepAlways` a state with APTPL = 0 is held in memory only, and the sidecar is
 * removed when APTPL turns off. With `keepAlways` every load reads the sidecar, so stores over
 * the same files see each other's commits. Commits through stores over the same `files` object are atomic;
 * servers on different hosts need, in addition, a lock on the shared volume around the
 * read-compare-write (the multi-node layer's part).
 */
export class SidecarReservationStore implements ReservationStore {
  /** The last state this store loaded or committed: the state itself when the sidecar holds none. */
  private latest: ReservationSnapshot = { version: 0, state: emptyPrState() };
  private loaded = false;

  constructor(
    private readonly files: SidecarFiles,
    private readonly options: SidecarStoreOptions = {},
  ) {}

  get persistsThroughPowerLoss(): boolean {
    return this.files.readSidecar !== undefined && this.files.writeSidecar !== undefined;
  }

  /**
   * Without `keepAlways` this store is the sidecar's only writer (the LUN file's exclusive lock
   * keeps other servers away), so the sidecar is read once and the state kept in memory after.
   */
  async load(): Promise<ReservationSnapshot> {
    if (this.loaded && this.options.keepAlways !== true) return this.latest;
    const read = this.files.readSidecar;
    const buf = read === undefined ? undefined : await read.call(this.files, PR_SIDECAR);
    if (buf !== undefined) {
      const { revision, state } = decodePrState(buf);
      this.latest = { version: revision, state };
    } else if (this.options.keepAlways) {
      this.latest = { version: 0, state: emptyPrState() };
    }
    this.loaded = true;
    return this.latest;
  }

  compareAndSwap(expected: number, next: PrState): Promise<CommitOutcome> {
    const run = (commitQueues.get(this.files) ?? Promise.resolve()).then(() => this.swap(expected, next));
    commitQueues.set(this.files, run.catch(() => undefined));
    return run;
  }

  private async swap(expected: number, next: PrState): Promise<CommitOutcome> {
    const cur = await this.load();
    if (cur.version !== expected) return { committed: false };
    const version = expected + 1;
    const keep = this.options.keepAlways === true || next.aptpl;
    const write = this.files.writeSidecar;
    if (keep || cur.state.aptpl) {
      if (write === undefined) throw new Error('the backend cannot keep a reservation state');
      await write.call(this.files, PR_SIDECAR, keep ? encodePrState(version, next) : undefined);
    }
    this.latest = { version, state: next };
    return { committed: true, version };
  }
}
