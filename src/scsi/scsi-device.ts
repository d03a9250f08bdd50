import type { DeviceContext } from './command-table.js';
import { Op } from './cdb.js';
import { COMMANDS } from './commands.js';
import type { LogicalUnit } from './logical-unit.js';
import { Asc, internalTargetFailure, logicalUnitNotSupported } from './sense.js';
import { inquiryNoLun, reportLuns, requestSenseNoLun } from './spc.js';
import type { ItNexus } from './nexus.js';
import { Task, TaskSet, type AbortListener } from './task-set.js';
import type { ScsiRequest, ScsiResponse } from './types.js';

/** What the transport hands over with a task when it runs: the data parts of a ScsiRequest. */
export type TaskPayload = Omit<ScsiRequest, 'nexus' | 'lun' | 'cdb'>;

/**
 * Outcome of a task management function (SAM-5 §7.1 service responses): done; the LUN has no
 * logical unit; or refused because the issuing nexus is read-only and the function would abort
 * other nexuses' tasks or reset shared state.
 */
export type TmfOutcome = 'complete' | 'no-such-lun' | 'not-authorized';

const noAbortListener: AbortListener = () => {};

const DEFAULT_VENDOR = { vendor: 'GLFS', product: 'glfs-target', revision: '0001' };

/** The SCSI target device: a set of logical units addressed by LUN (SAM-5 §4.6). */
export class ScsiDevice implements DeviceContext {
  private readonly units = new Map<number, LogicalUnit>();
  private luns: readonly number[];
  private readonly vendor: { vendor: string; product: string; revision: string };
  /** Every task received and not yet completed, of every I_T nexus. */
  readonly tasks = new TaskSet();

  constructor(units: LogicalUnit[]) {
    for (const u of units) {
      if (this.units.has(u.lun)) throw new Error(`duplicate LUN ${u.lun}`);
      this.units.set(u.lun, u);
    }
    this.luns = [...this.units.keys()].sort((a, b) => a - b);
    const first = this.luns.length ? this.units.get(this.luns[0]!)! : undefined;
    this.vendor = first ? { vendor: first.vendor, product: first.product, revision: first.revision } : DEFAULT_VENDOR;
  }

  /**
   * Enter a command into the task set as it arrives (SAM-5 "Send SCSI Command"), before its
   * data has: task management sees it from now on. `onAbort` tells the transport when it is
   * aborted. It leaves the task set when `run` completes, or by `discard`.
   */
  createTask(nexus: ItNexus, lun: number, cdb: Buffer, onAbort: AbortListener): Task {
    const task = new Task(nexus, lun, cdb, onAbort);
    this.tasks.add(task);
    return task;
  }

  /** Run a pending task in the device server. Never rejects: every failure is a CHECK CONDITION. */
  run(task: Task, payload: TaskPayload): Promise<ScsiResponse> {
    task.state = 'running';
    const req: ScsiRequest = { nexus: task.nexus, lun: task.lun, cdb: task.cdb, task, ...payload };
    const lu = this.units.get(task.lun);
    let response: Promise<ScsiResponse>;
    if (lu !== undefined) response = lu.execute(req, this);
    else {
      try {
        response = Promise.resolve(this.executeNoLun(req));
      } catch {
        response = Promise.resolve(internalTargetFailure());
      }
    }
    const done = response.finally(() => this.tasks.remove(task));
    task.execution = done;
    return done;
  }

  /** Resolves once no task on `lun` is running in the device server (new ones may be refused meanwhile). */
  async quiesce(lun: number): Promise<void> {
    for (;;) {
      const running = this.tasks.select((t) => t.lun === lun && t.state === 'running' && t.execution !== null);
      if (running.length === 0) return;
      await Promise.allSettled(running.map((t) => t.execution));
    }
  }

  /** A pending task ends without running (its data transfer failed): it leaves the task set. */
  discard(task: Task): void {
    this.tasks.remove(task);
  }

  /** Create and run a task at once, for callers without a data phase or task management of their own. */
  execute(req: ScsiRequest): Promise<ScsiResponse> {
    const { nexus, lun, cdb, ...payload } = req;
    return this.run(this.createTask(nexus, lun, cdb, noAbortListener), payload);
  }

  /**
   * A LUN with no logical unit (SPC-4 §6.6.2, §6.33, §6.39): INQUIRY, REPORT LUNS and REQUEST
   * SENSE still work; everything else is ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED.
   */
  private executeNoLun(req: ScsiRequest): ScsiResponse {
    switch (req.cdb[0]) {
      case Op.INQUIRY:
        return inquiryNoLun(req, this.vendor);
      case Op.REPORT_LUNS:
        return reportLuns(req, this.luns);
      case Op.REQUEST_SENSE:
        return requestSenseNoLun(req);
      default:
        return logicalUnitNotSupported();
    }
  }

  /**
   * DeviceContext: the LU a logical-unit designator of VPD page 83h names — the NAA designator
   * (binary, type 3) or the T10 vendor ID designator (ASCII, type 1: vendor + serial).
   */
  unitByDesignator(codeSet: number, assocType: number, designator: Buffer): LogicalUnit | undefined {
    if ((assocType & 0x30) !== 0) return undefined; // association: logical unit
    for (const lu of this.units.values()) {
      const type = assocType & 0x0f;
      if (type === 0x03 && codeSet === 0x01 && designator.equals(lu.naaBytes)) return lu;
      if (type === 0x01 && codeSet === 0x02) {
        const t10 = Buffer.alloc(8, 0x20);
        t10.write(lu.vendor.slice(0, 8), 0, 'latin1');
        if (designator.equals(Buffer.concat([t10, Buffer.from(lu.serial, 'latin1')]))) return lu;
      }
    }
    return undefined;
  }

  /**
   * Add a logical unit at a LUN that has none (a configuration reload). The logical unit
   * inventory changed: every I_T nexus gets REPORTED LUNS DATA HAS CHANGED (SPC-4 §6.33).
   */
  addUnit(lu: LogicalUnit): void {
    if (this.units.has(lu.lun)) throw new Error(`duplicate LUN ${lu.lun}`);
    this.units.set(lu.lun, lu);
    this.luns = [...this.units.keys()].sort((a, b) => a - b);
    this.inventoryChanged();
  }

  /**
   * Take the logical unit at `lun` out of the device: from now on commands to it get LOGICAL UNIT
   * NOT SUPPORTED; resolves with it once its running tasks have ended (the caller closes its
   * backend). The I_T nexuses get REPORTED LUNS DATA HAS CHANGED (SPC-4 §6.33) through the
   * logical units that remain.
   */
  async removeUnit(lun: number): Promise<LogicalUnit | undefined> {
    const lu = this.units.get(lun);
    if (lu === undefined) return undefined;
    this.units.delete(lun);
    this.luns = [...this.units.keys()].sort((a, b) => a - b);
    this.inventoryChanged();
    await this.quiesce(lun);
    return lu;
  }

  /**
   * The unit attention goes to every nexus each remaining logical unit knows; one that has not
   * addressed it yet gets the power-on condition there first, which also tells it to look again.
   */
  private inventoryChanged(): void {
    for (const lu of this.units.values()) lu.unitAttentions.establish(Asc.REPORTED_LUNS_DATA_HAS_CHANGED);
  }

  /** The logical unit at `lun`, if any. */
  unit(lun: number): LogicalUnit | undefined {
    return this.units.get(lun);
  }

  /**
   * Whether the command can take its write data as a `dataOutStream` (written as it arrives):
   * the commands whose descriptor says `streamsDataOut` (the plain WRITEs). Everything else
   * (COMPARE AND WRITE, parameter lists, …) needs all of its data at once.
   */
  acceptsDataOutStream(cdb: Buffer): boolean {
    const d = COMMANDS.lookup(cdb);
    return typeof d === 'object' && d.streamsDataOut === true;
  }

  hasLun(lun: number): boolean {
    return this.units.has(lun);
  }

  lunNumbers(): number[] {
    return [...this.luns];
  }

  // ── Task management (SAM-5 §7). Each resolves once the affected tasks have left the device server.

  /** ABORT TASK (SAM-5 §7.2): that one task. */
  async abortTask(issuer: ItNexus, task: Task): Promise<TmfOutcome> {
    await this.tasks.abort([task], issuer);
    return 'complete';
  }

  /** ABORT TASK SET (SAM-5 §7.3): the issuing nexus' tasks on the LU; nobody else is told. */
  async abortTaskSet(issuer: ItNexus, lun: number): Promise<TmfOutcome> {
    if (!this.units.has(lun)) return 'no-such-lun';
    await this.tasks.abort(this.tasks.select((t) => t.lun === lun && t.nexus.id === issuer.id), issuer);
    return 'complete';
  }

  /**
   * CLEAR TASK SET (SAM-5 §7.5): every nexus' tasks on the LU; with TST = 000b in the Control
   * mode page the other nexuses get COMMANDS CLEARED BY ANOTHER INITIATOR (2Fh/00h).
   */
  async clearTaskSet(issuer: ItNexus, lun: number): Promise<TmfOutcome> {
    const lu = this.units.get(lun);
    if (lu === undefined) return 'no-such-lun';
    if (issuer.readOnly) return 'not-authorized';
    lu.unitAttentions.establish(Asc.COMMANDS_CLEARED_BY_ANOTHER_INITIATOR, issuer);
    await this.tasks.abort(this.tasks.select((t) => t.lun === lun), issuer);
    return 'complete';
  }

  /**
   * LOGICAL UNIT RESET (SAM-5 §7.7 / §6.3.3): every task on the LU ends, then every I_T nexus
   * gets BUS DEVICE RESET FUNCTION OCCURRED (29h/03h). Mode parameters (WCE) persist: they are
   * the LU's configuration, not task state.
   */
  async resetLogicalUnit(issuer: ItNexus, lun: number): Promise<TmfOutcome> {
    const lu = this.units.get(lun);
    if (lu === undefined) return 'no-such-lun';
    if (issuer.readOnly) return 'not-authorized';
    await this.tasks.abort(this.tasks.select((t) => t.lun === lun), issuer);
    lu.reset(Asc.BUS_DEVICE_RESET_FUNCTION_OCCURRED);
    return 'complete';
  }

  /**
   * TARGET WARM RESET / TARGET COLD RESET. RFC 7143 §11.5.1 defines both as the SAM target reset,
   * i.e. a hard reset (SAM-5 §6.3.2): every task ends, and the unit attention is POWER ON,
   * RESET, OR BUS DEVICE RESET OCCURRED (29h/00h). A cold reset additionally drops every
   * connection (the transport's job); SAM-5 §6.3.1 allows 29h/00h for the power-on it resembles.
   */
  async resetTarget(issuer: ItNexus): Promise<TmfOutcome> {
    if (issuer.readOnly) return 'not-authorized';
    await this.tasks.abort(this.tasks.select(() => true), issuer);
    for (const lu of this.units.values()) lu.reset(Asc.POWER_ON_RESET_OR_BUS_DEVICE_RESET);
    return 'complete';
  }

  /**
   * Resolves once every logical unit has loaded its persisted state (persistent reservations
   * with APTPL); rejects with the first failure (that LU then refuses commands with NOT READY /
   * MANUAL INTERVENTION REQUIRED). Optional for the transport: commands wait for the load anyway.
   */
  async opened(): Promise<void> {
    let first: unknown;
    for (const lu of this.units.values()) {
      try {
        await lu.opened();
      } catch (err) {
        first ??= new Error(`LUN ${lu.lun} (${lu.backend.description}): persisted reservation state unusable: ${(err as Error).message}`, { cause: err });
      }
    }
    if (first !== undefined) throw first;
  }

  /**
   * I_T nexus loss (SAM-5 §6.3.4): the transport calls this when a session ends (logout,
   * connection loss with ErrorRecoveryLevel 0, session reinstatement). The nexus' tasks end
   * without a response; SPC-2 reservations held through it are released; it gets I_T NEXUS LOSS
   * OCCURRED if it returns. Persistent reservations and registrations stay.
   */
  async nexusLost(nexus: ItNexus): Promise<void> {
    await this.tasks.abort(this.tasks.select((t) => t.nexus.id === nexus.id), null);
    for (const lu of this.units.values()) lu.nexusLost(nexus);
  }

  /**
   * DeviceContext, PERSISTENT RESERVE OUT / PREEMPT AND ABORT (SPC-4 §5.13.11.4.4): the preempted
   * nexuses' tasks on the LU end (TASK ABORTED, as they belong to other nexuses). Their PERSISTENT
   * RESERVE OUT commands are left alone: they are serialized behind the one preempting, so
   * waiting for them would never end.
   */
  async abortTasksOf(lun: number, nexuses: readonly ItNexus[], issuer: ItNexus): Promise<void> {
    const ids = new Set(nexuses.map((n) => n.id));
    await this.tasks.abort(this.tasks.select((t) => t.lun === lun && ids.has(t.nexus.id) && t.cdb[0] !== Op.PERSISTENT_RESERVE_OUT), issuer);
  }

  /** Flush and close every backend. Closes all of them even if one fails, then throws the first error. */
  async close(): Promise<void> {
    let first: unknown;
    for (const lu of this.units.values()) {
      try {
        await lu.backend.flush();
      } catch (err) {
        first ??= err;
      }
      try {
        await lu.backend.close();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}
