import type { DeviceContext } from './command-table.js';
import { Op } from './cdb.js';
import { COMMANDS } from './commands.js';
import type { LogicalUnit } from './logical-unit.js';
import { Asc, internalTargetFailure, logicalUnitNotSupported } from './sense.js';
import { inquiryNoLun, reportLuns, requestSenseNoLun } from './spc.js';
import type { ItNexus, ScsiRequest, ScsiResponse } from './types.js';

const DEFAULT_VENDOR = { vendor: 'GLFS', product: 'glfs-target', revision: '0001' };

/** The SCSI target device: a set of logical units addressed by LUN (SAM-5 §4.6). */
export class ScsiDevice implements DeviceContext {
  private readonly units = new Map<number, LogicalUnit>();
  private readonly luns: readonly number[];
  private readonly vendor: { vendor: string; product: string; revision: string };

  constructor(units: LogicalUnit[]) {
    for (const u of units) {
      if (this.units.has(u.lun)) throw new Error(`duplicate LUN ${u.lun}`);
      this.units.set(u.lun, u);
    }
    this.luns = [...this.units.keys()].sort((a, b) => a - b);
    const first = this.luns.length ? this.units.get(this.luns[0]!)! : undefined;
    this.vendor = first ? { vendor: first.vendor, product: first.product, revision: first.revision } : DEFAULT_VENDOR;
  }

  /** Never rejects: every failure is a CHECK CONDITION response. */
  execute(req: ScsiRequest): Promise<ScsiResponse> {
    const lu = this.units.get(req.lun);
    if (lu !== undefined) return lu.execute(req, this);
    try {
      return Promise.resolve(this.executeNoLun(req));
    } catch {
      return Promise.resolve(internalTargetFailure());
    }
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

  /**
   * LOGICAL UNIT RESET (SAM-5 §7.7 / §6.3.3): every I_T nexus gets the unit attention
   * BUS DEVICE RESET FUNCTION OCCURRED (29h/03h). Mode parameters (WCE) persist: they are the
   * LU's configuration, not task state. Returns false if there is no such LU.
   */
  resetLogicalUnit(lun: number): boolean {
    const lu = this.units.get(lun);
    if (!lu) return false;
    lu.reset(Asc.BUS_DEVICE_RESET_FUNCTION_OCCURRED);
    return true;
  }

  /**
   * TARGET WARM RESET / TARGET COLD RESET. RFC 7143 §11.5.1 defines both as the SAM target reset,
   * i.e. a hard reset (SAM-5 §6.3.2), whose unit attention is POWER ON, RESET, OR BUS DEVICE
   * RESET OCCURRED (29h/00h). A cold reset additionally drops every connection (the transport's
   * job); SAM-5 §6.3.1 allows 29h/00h for the power-on it resembles, so both use 29h/00h.
   */
  resetTarget(_cold: boolean): void {
    for (const lu of this.units.values()) lu.reset(Asc.POWER_ON_RESET_OR_BUS_DEVICE_RESET);
  }

  /**
   * CLEAR TASK SET side effects (SAM-5 §7.5, with TST = 000b in the Control mode page): every other
   * I_T nexus known to the LU gets COMMANDS CLEARED BY ANOTHER INITIATOR (2Fh/00h). The transport
   * aborts the tasks themselves. Returns false if there is no such LU.
   */
  clearTaskSet(lun: number, issuer: ItNexus): boolean {
    const lu = this.units.get(lun);
    if (!lu) return false;
    lu.unitAttentions.establish(Asc.COMMANDS_CLEARED_BY_ANOTHER_INITIATOR, issuer.id);
    return true;
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
   * connection loss with ErrorRecoveryLevel 0, session reinstatement), after its tasks are gone.
   * SPC-2 reservations held through the nexus are released; the nexus gets I_T NEXUS LOSS
   * OCCURRED if it returns. Persistent reservations and registrations stay.
   */
  nexusLost(nexus: ItNexus): void {
    for (const lu of this.units.values()) lu.nexusLost(nexus);
  }

  /**
   * Installed by the transport: abort every task of the given I_T nexuses on a LUN (used by
   * PERSISTENT RESERVE OUT / PREEMPT AND ABORT). Resolves once the tasks have left the SCSI layer.
   */
  taskAborter?: (lun: number, nexusIds: readonly string[]) => Promise<void>;

  /** DeviceContext: PREEMPT AND ABORT's task abort, through the transport's taskAborter. */
  async abortTasksOf(lun: number, nexusIds: readonly string[]): Promise<void> {
    if (this.taskAborter !== undefined) await this.taskAborter(lun, nexusIds);
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
