/**
 * Reservations of one logical unit: SPC-4 persistent reservations (§5.13, PERSISTENT RESERVE
 * IN/OUT §6.15/§6.16) and SPC-2 RESERVE/RELEASE (6/10), with the interaction SPC-4 §5.13.3
 * defines for CRH = 1.
 *
 * The persistent state lives in a ReservationStore (reservation-store.ts); this object caches the
 * last snapshot for the hot path (conflicts), and commits every PERSISTENT RESERVE OUT with
 * compare-and-swap: read the current version, plan the change (pr-out.ts), swap; when another
 * server committed in between, plan again against its state. A change that cannot be stored is
 * not made. The SPC-2 reservation is per device server and never stored.
 */
import { withinDeadline } from '../backend/bounded-backend.js';
import { isOutOfSpace } from '../backend/out-of-space.js';
import type { DeviceContext, ReservationClass } from './command-table.js';
import type { ItNexus } from './nexus.js';
import { persistentReserveIn } from './pr-in.js';
import { planPersistentReserveOut, type PendingUa } from './pr-out.js';
import { covers, emptyPrState, type PrState, type Registration } from './pr-state.js';
import { reservationConflicts } from './reservation-conflicts.js';
import type { ReservationSnapshot, ReservationStore } from './reservation-store.js';
import { Asc, SenseKey, good, internalTargetFailure, senseError, storageTimedOut, storageTimeout } from './sense.js';
import { Spc2Reservation } from './spc2-reservation.js';
import { ScsiStatus, type AbortWatch, type ScsiRequest, type ScsiResponse } from './types.js';
import type { UnitAttentions } from './unit-attention.js';

/** How often one PERSISTENT RESERVE OUT plans again after losing a compare-and-swap race. */
const MAX_COMMIT_ATTEMPTS = 8;

export interface ReservationHost {
  readonly lun: number;
  readonly unitAttentions: UnitAttentions;
  /**
   * How long the store has to answer one call during PERSISTENT RESERVE OUT or a refresh (its
   * files share the LU's mount, which may hang): then the command ends with `storageTimeout`, and a
   * task aborted meanwhile stops waiting, so task management completes.
   */
  readonly storeDeadlineMs: number;
}

function insufficientResourcesOrFailure(err: unknown): ScsiResponse {
  if (storageTimedOut(err)) return storageTimeout();
  if (isOutOfSpace(err)) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INSUFFICIENT_REGISTRATION_RESOURCES);
  return internalTargetFailure();
}

export class Reservations {
  private snapshot: ReservationSnapshot = { version: 0, state: emptyPrState() };
  private readonly spc2 = new Spc2Reservation();
  /** Serializes PERSISTENT RESERVE OUT and refresh, so this LU's snapshot only moves forward. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: ReservationHost,
    private readonly store: ReservationStore,
  ) {}

  /** Load the stored state. Throws if it cannot be read or trusted. */
  async load(): Promise<void> {
    this.snapshot = await this.store.load();
  }

  /**
   * Reload the state when the store's version has changed (another server committed); true if it
   * did. For a layer serving the LU through several servers. Throws as load() does.
   */
  refresh(task?: AbortWatch): Promise<boolean> {
    return this.serialized(async () => {
      const s = await withinDeadline(this.store.load(), this.host.storeDeadlineMs, task);
      if (s.version === this.snapshot.version) return false;
      this.snapshot = s;
      return true;
    });
  }

  /** True when nothing is reserved (the hot path skips every other check). */
  get idle(): boolean {
    return this.snapshot.state.reservation === null && this.spc2.holder === undefined;
  }

  get spc2ReservedBy(): string | undefined {
    return this.spc2.holder;
  }

  /** Store version of the state in force (a multi-server layer publishes it). */
  get version(): number {
    return this.snapshot.version;
  }

  /** Current persistent reservation state (for tests and diagnostics). */
  get persistent(): Readonly<PrState> {
    return this.snapshot.state;
  }

  /** Does a command of class `cls` from `nexus` conflict with the reservations held? */
  conflicts(cls: ReservationClass, nexus: ItNexus): boolean {
    return reservationConflicts(cls, nexus, this.snapshot.state, this.spc2.holder);
  }

  reserve(nexus: ItNexus): ScsiResponse {
    return this.spc2.reserve(nexus, this.snapshot.state);
  }

  release(nexus: ItNexus): ScsiResponse {
    return this.spc2.release(nexus, this.snapshot.state);
  }

  /** LOGICAL UNIT RESET / hard reset (SPC-2 §5.5.1): SPC-2 reservations end; persistent ones stay. */
  reset(): void {
    this.spc2.reset();
  }

  /** I_T nexus loss: the nexus' SPC-2 reservation ends (persistent reservations and registrations stay). */
  nexusLost(nexus: ItNexus): void {
    this.spc2.nexusLost(nexus);
  }

  persistentReserveIn(req: ScsiRequest): ScsiResponse {
    return persistentReserveIn(req, this.snapshot.state);
  }

  persistentReserveOut(req: ScsiRequest, dev: DeviceContext): Promise<ScsiResponse> {
    return this.serialized(() => this.prout(req, dev));
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async prout(req: ScsiRequest, dev: DeviceContext): Promise<ScsiResponse> {
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      let cur: ReservationSnapshot;
      try {
        cur = await withinDeadline(this.store.load(), this.host.storeDeadlineMs, req.task);
      } catch (err) {
        return storageTimedOut(err) ? storageTimeout() : internalTargetFailure();
      }
      this.snapshot = cur;
      const plan = planPersistentReserveOut(req, cur.state, this.store.persistsThroughPowerLoss);
      if ('response' in plan) return plan.response;
      let outcome;
      try {
        outcome = await withinDeadline(this.store.compareAndSwap(cur.version, plan.next), this.host.storeDeadlineMs, req.task);
      } catch (err) {
        return insufficientResourcesOrFailure(err);
      }
      if (!outcome.committed) continue; // another server changed the state: plan against it
      this.snapshot = { version: outcome.version, state: plan.next };
      this.establish(plan.uas, req.nexus);
      if (plan.abort.length !== 0 && dev.abortTasksOf !== undefined) {
        const nexuses = this.nexusesOf(plan.abort, req.nexus);
        if (nexuses.length !== 0) await dev.abortTasksOf(this.host.lun, nexuses, req.nexus);
      }
      return good();
    }
    // Still racing: the device server is busy (SAM-5 §5.3.1); the initiator retries.
    return { status: ScsiStatus.Busy };
  }

  private establish(uas: readonly PendingUa[], issuer: ItNexus): void {
    for (const ua of uas) {
      for (const nexus of this.nexusesOf(ua.regs, issuer)) this.host.unitAttentions.establishFor(nexus, ua.code);
    }
  }

  /** Every I_T nexus known to the LU that `regs` cover, except `except`. */
  private nexusesOf(regs: readonly Registration[], except: ItNexus): ItNexus[] {
    if (regs.length === 0) return [];
    const out: ItNexus[] = [];
    for (const nexus of this.host.unitAttentions.knownNexuses()) {
      if (nexus.id !== except.id && regs.some((r) => covers(r, nexus))) out.push(nexus);
    }
    return out;
  }
}
