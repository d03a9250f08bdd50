import type { BlockBackend } from '../backend/block-backend.js';
import { BoundedBackend, type CallBounds } from '../backend/bounded-backend.js';
import { ACTIVE_ONLY, aluaRefusal, type AluaState } from './alua.js';
import type { AluaCoordinator } from './target-port-groups.js';
import { Op } from './cdb.js';
import { BAD_SERVICE_ACTION, ruleFor, type CommandDescriptor, type CommandTable, type DeviceContext } from './command-table.js';
import { COMMANDS } from './commands.js';
import type { ModeUnit } from './mode-pages.js';
import { RangeLock } from './range-lock.js';
import { SidecarReservationStore, type ReservationStore } from './reservation-store.js';
import { Reservations } from './reservations.js';
import {
  Asc,
  SenseKey,
  checkCondition,
  internalTargetFailure,
  invalidFieldInCdb,
  invalidOpcode,
  reservationConflict,
  senseError,
  writeError,
  writeProtected,
} from './sense.js';
import type { ItNexus } from './nexus.js';
import type { AbortWatch, ScsiRequest, ScsiResponse } from './types.js';
import { UnitAttentions } from './unit-attention.js';
import type { InquiryIdentity } from './vpd.js';
import { CopyManager } from './xcopy.js';

/**
 * Largest data transfer of one READ/WRITE/VERIFY, reported in the Block Limits VPD page. Large
 * writes are streamed burst by burst by the transport, so this does not bound memory per write.
 */
export const MAX_TRANSFER_BYTES = 32 * 1024 * 1024;
/** MAXIMUM WRITE SAME LENGTH: bounds how long one WRITE SAME holds its range lock. */
export const MAX_WRITE_SAME_BYTES = 8 * 1024 * 1024;

/**
 * UNMAP limits (Block Limits VPD): at most this many LBAs per command, in at most
 * MAX_UNMAP_DESCRIPTORS descriptors. Hole punching is cheap; the bound keeps one command short
 * enough for initiator timeouts on slow (network) file systems.
 */
export const MAX_UNMAP_LBA_COUNT = 1024 * 1024;
export const MAX_UNMAP_DESCRIPTORS = 256;

/** COMPARE AND WRITE: at most this many blocks (the NUMBER OF LOGICAL BLOCKS field is one byte). */
export const MAX_COMPARE_AND_WRITE_BLOCKS = 255;

export interface LogicalUnitOptions {
  lun: number;
  backend: BlockBackend;
  blockSize: number;
  readOnly: boolean;
  /** Initial (and default) WCE; MODE SELECT may change the current value. */
  writeCache: boolean;
  serial: string;
  /** 32 hex digits, NAA 6 (IEEE Registered Extended). */
  naa: string;
  vendor: string;
  product: string;
  revision: string;
  targetName: string;
  /** When set, VPD 83h also carries the target port designators for this portal group. */
  targetPortalGroupTag?: number;
  /**
   * Report logical block provisioning (thin provisioning: UNMAP, WRITE SAME with UNMAP, GET LBA
   * STATUS). Default: whenever the backend can punch holes and report them.
   */
  thinProvisioning?: boolean;
  /**
   * Bounds on every call to the backend: calls in flight at once (so a hung mount holds at most
   * that many thread-pool threads) and the deadline after which a command's call fails (NOT READY /
   * LOGICAL UNIT COMMUNICATION TIME-OUT). Default DEFAULT_CALL_BOUNDS.
   */
  callBounds?: CallBounds;
  /** Where persistent reservations are kept; default: the backend's "pr.json" sidecar (APTPL only). */
  reservationStore?: ReservationStore;
  /**
   * Who runs the LU's target port groups when it is served through several servers (ALUA,
   * SPC-4 §5.15): INQUIRY then reports TPGS = 11b, and REPORT / SET TARGET PORT GROUPS exist.
   */
  alua?: AluaCoordinator;
}

/** Stand-in CDBs whose descriptors give the rules of a READ and a WRITE (`copyTargetRefusal`). */
const READ_CDB = Buffer.from([Op.READ_16, ...new Array<number>(15).fill(0)]);
const WRITE_CDB = Buffer.from([Op.WRITE_16, ...new Array<number>(15).fill(0)]);

/** Resolves once `work` settles or `task` is aborted, whichever is first (`work` goes on). */
function settledOrAborted(work: Promise<unknown>, task: AbortWatch | undefined): Promise<void> {
  const settled = work.then(() => undefined, () => undefined);
  if (task === undefined) return settled;
  if (task.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const stopWatching = task.whenAborted(resolve);
    void settled.then(() => {
      stopWatching();
      resolve();
    });
  });
}

/** One logical unit: a block device (SBC-3, peripheral device type 00h) over a BlockBackend. */
export class LogicalUnit implements ModeUnit, InquiryIdentity {
  readonly lun: number;
  /** The storage, every call bounded (bounded-backend.ts): handlers pass their task to each call. */
  readonly backend: BoundedBackend;
  readonly blockSize: number;
  /** Capacity in logical blocks: changes only when the backend grows (grow, capacityChanged). */
  blocks: number;
  readonly readOnly: boolean;
  readonly defaultWriteCache: boolean;
  readonly serial: string;
  readonly naa: string;
  readonly naaBytes: Buffer;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  readonly targetName: string;
  readonly targetPortalGroupTag?: number;
  readonly maxTransferBlocks: number;
  /** Thin provisioned (LBPME = 1): UNMAP / WRITE SAME UNMAP deallocate, GET LBA STATUS reports holes. */
  readonly thinProvisioned: boolean;
  /** OPTIMAL UNMAP GRANULARITY, in blocks: the backend's allocation unit. */
  readonly unmapGranularity: number;
  readonly maxUnmapBlocks: number;
  readonly maxUnmapDescriptors: number;
  readonly maxCompareWriteBlocks: number;
  /** MAXIMUM WRITE SAME LENGTH (MAX_WRITE_SAME_BYTES in blocks). */
  readonly maxWriteSameBlocks: number;
  readonly unitAttentions = new UnitAttentions();
  readonly commands: CommandTable = COMMANDS;
  /** Range locks over LBAs: writes shared, read-modify-write commands exclusive. */
  readonly locks = new RangeLock();
  readonly reservations: Reservations;
  /** EXTENDED COPY's held copy status data. */
  readonly copyManager = new CopyManager();

  /** ReservationHost: the reservation store's calls are bounded like the backend's. */
  get storeDeadlineMs(): number {
    return this.backend.bounds.deadlineMs;
  }

  private wce: boolean;
  /** ALUA access state of the target port group this server's ports are in (SPC-4 §5.15.2). */
  private aluaState: AluaState = 'active/optimized';
  readonly alua?: AluaCoordinator;
  /** Opcodes with at least one command available on this LU (computed on first need). */
  private opcodesHere: Set<number> | undefined;
  /** TPGS field of standard INQUIRY data: 11b (implicit and explicit ALUA) when `alua` is set. */
  readonly tpgs: number;
  /** Persistent reservation state is loaded (from the backend's sidecar) before the first command runs. */
  private ready = false;
  private readonly loading: Promise<void>;
  private loadError: unknown;

  constructor(opts: LogicalUnitOptions) {
    const bs = opts.blockSize;
    if (!Number.isInteger(bs) || bs < 512 || bs > 65536 || (bs & (bs - 1)) !== 0) {
      throw new Error(`LUN ${opts.lun}: block size ${bs} is not a power of two in 512..65536`);
    }
    if (!/^6[0-9a-fA-F]{31}$/.test(opts.naa)) {
      throw new Error(`LUN ${opts.lun}: NAA "${opts.naa}" is not 32 hex digits starting with 6`);
    }
    const blocks = Math.floor(opts.backend.sizeBytes / bs);
    if (blocks < 1) throw new Error(`LUN ${opts.lun}: backend is smaller than one block`);
    this.lun = opts.lun;
    this.backend = new BoundedBackend(opts.backend, opts.callBounds);
    this.blockSize = bs;
    this.blocks = blocks;
    this.readOnly = opts.readOnly;
    this.wce = opts.writeCache;
    this.defaultWriteCache = opts.writeCache;
    this.serial = opts.serial;
    this.naa = opts.naa.toLowerCase();
    this.naaBytes = Buffer.from(this.naa, 'hex');
    this.vendor = opts.vendor;
    this.product = opts.product;
    this.revision = opts.revision;
    this.targetName = opts.targetName;
    if (opts.targetPortalGroupTag !== undefined) this.targetPortalGroupTag = opts.targetPortalGroupTag;
    if (opts.alua !== undefined) this.alua = opts.alua;
    this.tpgs = opts.alua !== undefined ? 0x3 : 0;
    this.maxTransferBlocks = Math.max(1, Math.floor(MAX_TRANSFER_BYTES / bs));
    const b = opts.backend;
    this.thinProvisioned = (opts.thinProvisioning ?? true) && b.punchHole !== undefined && b.mapStatus !== undefined;
    this.unmapGranularity = Math.max(1, Math.floor((b.allocationUnit ?? bs) / bs));
    this.maxUnmapBlocks = this.thinProvisioned ? MAX_UNMAP_LBA_COUNT : 0;
    this.maxUnmapDescriptors = this.thinProvisioned ? MAX_UNMAP_DESCRIPTORS : 0;
    this.maxWriteSameBlocks = Math.max(1, Math.floor(MAX_WRITE_SAME_BYTES / bs));
    this.maxCompareWriteBlocks = Math.min(MAX_COMPARE_AND_WRITE_BLOCKS, Math.floor(this.maxTransferBlocks / 2));
    this.reservations = new Reservations(this, opts.reservationStore ?? new SidecarReservationStore(this.backend));
    this.loading = this.reservations.load().then(
      () => {
        this.ready = true;
      },
      (err: unknown) => {
        this.loadError = err;
        this.ready = true;
      },
    );
  }

  /**
   * Grow the LU to `sizeBytes` (a whole number of blocks, not below the current capacity): the
   * backend grows, then capacityChanged tells every I_T nexus.
   */
  async grow(sizeBytes: number): Promise<void> {
    if (sizeBytes % this.blockSize !== 0) throw new Error(`LUN ${this.lun}: ${sizeBytes} bytes is not a whole number of ${this.blockSize}-byte blocks`);
    if (sizeBytes < this.blocks * this.blockSize) throw new Error(`LUN ${this.lun}: cannot shrink from ${this.blocks * this.blockSize} to ${sizeBytes} bytes`);
    if (sizeBytes === this.blocks * this.blockSize) return;
    if (this.backend.grow === undefined) throw new Error(`LUN ${this.lun} (${this.backend.description}): this storage cannot grow`);
    await this.backend.grow(sizeBytes);
    this.capacityChanged();
  }

  /**
   * Take the capacity from the backend again (it grew, here or through another server). When it
   * changed, every I_T nexus gets CAPACITY DATA HAS CHANGED (2Ah/09h, SBC-3: the number of logical
   * blocks changed), so initiators read it again with READ CAPACITY.
   */
  capacityChanged(): void {
    const blocks = Math.floor(this.backend.sizeBytes / this.blockSize);
    if (blocks === this.blocks) return;
    this.blocks = blocks;
    this.unitAttentions.establish(Asc.CAPACITY_DATA_HAS_CHANGED);
  }

  /**
   * Resolves once the persisted state (persistent reservations with APTPL) is loaded; rejects
   * with the reason if it could not be: the LU then answers NOT READY / MANUAL INTERVENTION
   * REQUIRED to everything but INQUIRY, REPORT LUNS and REQUEST SENSE rather than run without
   * the reservations initiators rely on for fencing.
   */
  async opened(): Promise<void> {
    await this.loading;
    if (this.loadError !== undefined) throw this.loadError;
  }

  /** Current WCE: with false, every write is made durable before GOOD status. */
  get writeCache(): boolean {
    return this.wce;
  }

  /** The ALUA access state commands are checked against (SPC-4 §5.15.2). */
  get accessState(): AluaState {
    return this.aluaState;
  }

  /**
   * A service action this LU does not have: INVALID FIELD IN CDB when another service action of
   * the opcode exists here, else the whole opcode is unknown (SPC-4 §4.3.4 / §6.35).
   */
  private unknownServiceAction(opcode: number): ScsiResponse {
    this.opcodesHere ??= new Set(this.commands.all().filter((d) => d.available?.(this) ?? true).map((d) => d.opcode));
    return this.opcodesHere.has(opcode) ? invalidFieldInCdb(1, 4) : invalidOpcode();
  }

  /** Set by whoever runs the target port groups (`alua`); default active/optimized. */
  setAccessState(state: AluaState): void {
    this.aluaState = state;
  }

  /**
   * The access state of one of the LU's target port groups changed (here or through another
   * server): every I_T nexus gets ASYMMETRIC ACCESS STATE CHANGED (2Ah/06h, SPC-4 §5.15.2.2), except
   * `except` (the nexus whose SET TARGET PORT GROUPS caused it).
   */
  reportAccessStateChange(except?: ItNexus): void {
    this.unitAttentions.establish(Asc.ASYMMETRIC_ACCESS_STATE_CHANGED, except);
  }

  /**
   * Execute one command for this LU. Never rejects: failures become CHECK CONDITION.
   * Order of the checks:
   * 1. NOT READY / MANUAL INTERVENTION REQUIRED while the persisted state is unusable.
   * 2. A pending unit attention, before the CDB is even validated (SAM-5 §5.14).
   * 3. The CDB: operation code, service action, availability, length, NACA.
   * 4. The descriptor's rules (`ruleRefusal`): ALUA access state, reservations, write protection.
   * Commands whose descriptor says `uaExempt` skip 1 and 2.
   */
  async execute(req: ScsiRequest, dev: DeviceContext): Promise<ScsiResponse> {
    try {
      if (!this.ready) await this.loading;
      const cdb = req.cdb;
      const d = this.commands.lookup(cdb);
      // First contact of a nexus establishes its power-on unit attention, whatever the command.
      const ua = this.unitAttentions.queueFor(req.nexus);
      if (d === undefined || d === BAD_SERVICE_ACTION || d.uaExempt !== true) {
        const notReady = this.notReady();
        if (notReady !== undefined) return notReady;
        if (ua.length !== 0) {
          const code = ua.shift()!;
          return checkCondition(SenseKey.UNIT_ATTENTION, code >> 8, code & 0xff);
        }
      }
      if (d === undefined) return invalidOpcode();
      if (d === BAD_SERVICE_ACTION) return this.unknownServiceAction(cdb[0]!);
      if (d.available !== undefined && !d.available(this)) return this.unknownServiceAction(d.opcode);
      const control = d.usage.length - 1;
      if (cdb.length <= control) return invalidFieldInCdb(0);
      // NACA = 1 asks for ACA, which this device server does not support: SAM-5 (CONTROL byte)
      // requires ILLEGAL REQUEST / INVALID FIELD IN CDB.
      if (cdb[control]! & 0x04) return invalidFieldInCdb(control, 2);
      let refused = this.ruleRefusal(d, cdb, req.nexus);
      if (refused !== undefined && this.mayMoveHere(d, cdb)) {
        // Persistent reservations are the LU's wherever it is served (SPC-4 §5.13.1): a command
        // they refuse gets RESERVATION CONFLICT here, from the latest committed state, and does
        // not move the LU — an initiator the reservation shuts out never takes it from its owner.
        // When the state cannot be read (volume down) the coordinator decides, as before.
        const fresh = await this.reservations.refresh(req.task).then(() => true, () => false);
        const reservationClass = ruleFor(d.reservation ?? 'write', cdb);
        if (fresh && !this.reservations.idle && this.reservations.conflicts(reservationClass, req.nexus)) {
          return reservationConflict();
        }
        // Implicit ALUA (SPC-4 §5.15.2.8): the coordinator may move the LU to this port; the
        // command waits for that (bounded) and is then checked again. An aborted task stops
        // waiting, so task management completes (SAM-5 §7.2); nobody sees its answer.
        await settledOrAborted(this.alua!.awaitAccess(req.task), req.task);
        if (req.task?.aborted === true) return internalTargetFailure();
        refused = this.ruleRefusal(d, cdb, req.nexus);
      }
      if (refused !== undefined) return refused;
      return await d.handler(this, req, dev);
    } catch {
      return internalTargetFailure();
    }
  }

  /**
   * The descriptor's rules for this CDB from this I_T nexus, in this order:
   * - ALUA (SPC-4 §5.15.2): the access state belongs to the port the command came through, so a
   *   path that cannot serve it says so (NOT READY) whoever holds a reservation, and multipath
   *   fails over instead of seeing a RESERVATION CONFLICT. LIO checks ALUA before reservations too.
   * - Reservations (SPC-4 §5.13.1, SPC-2 §5.5.1).
   * - Write protection (`modifies`): DATA PROTECT / WRITE PROTECTED, as before any transfer.
   */
  private ruleRefusal(d: CommandDescriptor, cdb: Buffer, nexus: ItNexus): ScsiResponse | undefined {
    const refusal = aluaRefusal(this.aluaState, d.alua ?? ACTIVE_ONLY);
    if (refusal !== undefined) return refusal;
    const reservationClass = ruleFor(d.reservation ?? 'write', cdb);
    if (!this.reservations.idle && this.reservations.conflicts(reservationClass, nexus)) {
      return reservationConflict();
    }
    const modifies = ruleFor(d.modifies, cdb);
    if (modifies === 'medium' ? this.readOnly || nexus.readOnly : modifies === 'shared-state' && nexus.readOnly) {
      return writeProtected();
    }
    return undefined;
  }

  /**
   * Whether a command this port's access state refuses may start an implicit transition: one that
   * reads or writes the medium (not a path checker's TEST UNIT READY), on a LU whose target port
   * groups are managed, at a port that is not active.
   */
  private mayMoveHere(d: CommandDescriptor, cdb: Buffer): boolean {
    if (this.alua === undefined || aluaRefusal(this.aluaState, d.alua ?? ACTIVE_ONLY) === undefined) return false;
    const reservationClass = ruleFor(d.reservation ?? 'write', cdb);
    return reservationClass === 'read' || reservationClass === 'write';
  }

  /** NOT READY / MANUAL INTERVENTION REQUIRED while the persisted reservation state is unusable (see `opened`). */
  private notReady(): ScsiResponse | undefined {
    if (this.loadError === undefined) return undefined;
    return senseError(SenseKey.NOT_READY, Asc.LOGICAL_UNIT_NOT_READY_MANUAL_INTERVENTION_REQUIRED);
  }

  /**
   * EXTENDED COPY reading from (`read`) or writing to (`write`) this LU as a copy target
   * (SPC-4 §6.4) on behalf of `nexus`: what a READ or WRITE from that nexus would be refused
   * with before it ran (NOT READY, ALUA state, reservation conflict, write protection), if anything.
   */
  copyTargetRefusal(direction: 'read' | 'write', nexus: ItNexus): ScsiResponse | undefined {
    const cdb = direction === 'read' ? READ_CDB : WRITE_CDB;
    const d = this.commands.lookup(cdb) as CommandDescriptor;
    return this.notReady() ?? this.ruleRefusal(d, cdb, nexus);
  }

  /** MODE SELECT changed WCE (ModeUnit). */
  async changeWriteCache(wce: boolean, issuer: ItNexus): Promise<ScsiResponse | undefined> {
    this.wce = wce;
    // SPC-4 §5.9 / §6.11: parameters shared by all I_T nexuses changed → MODE PARAMETERS CHANGED
    // for every other nexus.
    this.unitAttentions.establish(Asc.MODE_PARAMETERS_CHANGED, issuer);
    if (!wce) {
      // Writes acknowledged while the cache was on become durable before we report the change.
      try {
        await this.backend.flush();
      } catch (err) {
        return writeError(err);
      }
    }
    return undefined;
  }

  /**
   * Logical unit reset or hard reset: `code` becomes the unit attention for every known nexus,
   * and an SPC-2 RESERVE ends (SPC-2 §5.5.1). Persistent reservations are unaffected.
   */
  reset(code: number): void {
    this.unitAttentions.establish(code);
    this.reservations.reset();
    this.copyManager.forget();
  }

  /**
   * The transport lost an I_T nexus (session closed, logged out or reinstated): its SPC-2
   * reservation ends, and it will see I_T NEXUS LOSS OCCURRED (29h/07h) if it comes back
   * (SAM-5 §6.3.4) if it comes back while among the last MAX_REMEMBERED_LOST_NEXUSES lost.
   * Registrations and persistent reservations stay.
   */
  nexusLost(nexus: ItNexus): void {
    this.reservations.nexusLost(nexus);
    this.copyManager.forget(nexus.id);
    this.unitAttentions.nexusLost(nexus);
  }
}
