import type { AluaAccess } from './alua.js';
import type { LogicalUnit } from './logical-unit.js';
import type { ItNexus } from './nexus.js';
import type { ScsiRequest, ScsiResponse } from './types.js';

/** What a command handler may ask of the SCSI target device around its logical unit. */
export interface DeviceContext {
  /** LUNs of every logical unit in the target, ascending. */
  lunNumbers(): readonly number[];
  /**
   * Abort every task of the given I_T nexuses on `lun` (PERSISTENT RESERVE OUT / PREEMPT AND
   * ABORT, SPC-4 §5.13.11.4.4) on behalf of `issuer`. Resolves once they have left the SCSI layer.
   */
  abortTasksOf?(lun: number, nexuses: readonly ItNexus[], issuer: ItNexus): Promise<void>;
  /**
   * The logical unit of this target device a VPD 83h designator names (EXTENDED COPY's
   * identification CSCD descriptors): code set, association and designator type byte
   * (association << 4 | type), and the designator.
   */
  unitByDesignator?(codeSet: number, assocType: number, designator: Buffer): LogicalUnit | undefined;
}

/**
 * How a command is treated while a reservation is held by another I_T nexus (SPC-4 §5.13.1
 * tables for persistent reservations, SBC-3 §4.17 for block commands, SPC-2 §5.5.1):
 * - `exempt`: never conflicts (INQUIRY, REPORT LUNS, REQUEST SENSE).
 * - `allowed`: allowed under every persistent reservation type; conflicts under another nexus'
 *   SPC-2 RESERVE.
 * - `read`: allowed for non-holders under Write Exclusive types, conflicts under Exclusive Access.
 * - `write`: conflicts for non-holders (non-registrants for registrants-only / all-registrants).
 * - `pr`: PERSISTENT RESERVE IN/OUT: conflicts under any SPC-2 reservation, else the handler decides.
 * - `spc2`: RESERVE/RELEASE(6/10): the handler decides (SPC-4 §5.13.3).
 */
export type ReservationClass = 'exempt' | 'allowed' | 'read' | 'write' | 'pr' | 'spc2';

/**
 * What a command changes that a read-only logical unit or I_T nexus must not:
 * - `nothing`.
 * - `medium`: logical block data. Refused with DATA PROTECT / WRITE PROTECTED (27h/00h) when the
 *   logical unit is read-only or the I_T nexus is (ACL `readOnly`).
 * - `shared-state`: state every I_T nexus sees (reservations, registrations, mode parameters:
 *   SPC-4 §5.13, §6.11). Refused the same way when the I_T nexus is read-only, so a read-only
 *   initiator cannot change what the others see; on a read-only logical unit its read-write
 *   initiators keep reservations and mode pages.
 */
export type Modification = 'nothing' | 'medium' | 'shared-state';

/** A rule that is a constant or depends on CDB fields. */
export type CdbRule<T> = T | ((cdb: Buffer) => T);

/** The value of a rule for one CDB. */
export function ruleFor<T extends string | boolean>(rule: CdbRule<T>, cdb: Buffer): T {
  return typeof rule === 'function' ? rule(cdb) : rule;
}

export type CommandHandler = (
  lu: LogicalUnit,
  req: ScsiRequest,
  dev: DeviceContext,
) => ScsiResponse | Promise<ScsiResponse>;

/** One implemented command: dispatch entry and the source of REPORT SUPPORTED OPERATION CODES data. */
export interface CommandDescriptor {
  readonly name: string;
  readonly opcode: number;
  /** Service action (byte 1 bits 4-0) for opcodes that have service actions. */
  readonly serviceAction?: number;
  /**
   * CDB USAGE DATA (SPC-4 §6.35.3): one byte per CDB byte; byte 0 is the opcode, the service
   * action byte carries the service action, other bits are 1 where the device server uses the bit.
   * Its length is the CDB length.
   */
  readonly usage: readonly number[];
  readonly handler: CommandHandler;
  /**
   * Whether the command exists on this logical unit (e.g. UNMAP only when thin provisioned).
   * Default: always. Where false, it is an invalid operation code and RSOC does not list it.
   */
  readonly available?: (lu: LogicalUnit) => boolean;
  /*
   * The rules below are enforced once, in LogicalUnit.execute, before the handler runs. Where
   * one is omitted its default is the cautious answer.
   */
  /** What the command changes (required: every row says it). */
  readonly modifies: CdbRule<Modification>;
  /** Treatment under reservations. Default `write`. */
  readonly reservation?: CdbRule<ReservationClass>;
  /**
   * Neither reports nor clears a pending unit attention (SAM-5 §5.14: INQUIRY, REPORT LUNS,
   * REQUEST SENSE), and is still answered while the LU is NOT READY / MANUAL INTERVENTION
   * REQUIRED. Default false.
   */
  readonly uaExempt?: boolean;
  /** The ALUA access states in which the command is processed (SPC-4 §5.15.2). Default ACTIVE_ONLY. */
  readonly alua?: AluaAccess;
  /**
   * The handler takes its Data-Out as a stream written as it arrives (ScsiRequest.dataOutStream)
   * instead of whole. Default false (the data is gathered first).
   */
  readonly streamsDataOut?: boolean;
}

/** Lookup result for an opcode that exists but whose service action is not implemented. */
export const BAD_SERVICE_ACTION = 'bad-service-action' as const;

/** Opcode (and service action) → handler. Built once; shared by every logical unit. */
export class CommandTable {
  private readonly byOpcode: (CommandDescriptor | undefined)[] = new Array(256).fill(undefined);
  private readonly bySa: (Map<number, CommandDescriptor> | undefined)[] = new Array(256).fill(undefined);

  constructor(descriptors: readonly CommandDescriptor[]) {
    for (const d of descriptors) this.add(d);
  }

  private add(d: CommandDescriptor): void {
    if (d.usage[0] !== d.opcode) throw new Error(`${d.name}: CDB usage byte 0 must be the opcode`);
    if (d.serviceAction === undefined) {
      if (this.byOpcode[d.opcode] || this.bySa[d.opcode]) throw new Error(`${d.name}: opcode registered twice`);
      this.byOpcode[d.opcode] = d;
      return;
    }
    if (this.byOpcode[d.opcode]) throw new Error(`${d.name}: opcode registered without service action`);
    if ((d.usage[1]! & 0x1f) !== d.serviceAction) throw new Error(`${d.name}: usage byte 1 must hold the SA`);
    let m = this.bySa[d.opcode];
    if (!m) this.bySa[d.opcode] = m = new Map();
    if (m.has(d.serviceAction)) throw new Error(`${d.name}: service action registered twice`);
    m.set(d.serviceAction, d);
  }

  /** The command for a CDB; undefined for an unknown opcode; BAD_SERVICE_ACTION for a known opcode with an unknown SA. */
  lookup(cdb: Buffer): CommandDescriptor | typeof BAD_SERVICE_ACTION | undefined {
    const op = cdb[0];
    if (op === undefined) return undefined;
    const d = this.byOpcode[op];
    if (d !== undefined) return d;
    const m = this.bySa[op];
    if (m === undefined) return undefined;
    return m.get((cdb[1] ?? 0) & 0x1f) ?? BAD_SERVICE_ACTION;
  }

  hasServiceActions(opcode: number): boolean {
    return this.bySa[opcode] !== undefined;
  }

  get(opcode: number, serviceAction?: number): CommandDescriptor | undefined {
    if (serviceAction === undefined) return this.byOpcode[opcode];
    return this.bySa[opcode]?.get(serviceAction);
  }

  /** Every command, by opcode then service action (the order RSOC reports). */
  all(): CommandDescriptor[] {
    const out: CommandDescriptor[] = [];
    for (let op = 0; op < 256; op++) {
      const d = this.byOpcode[op];
      if (d) out.push(d);
      const m = this.bySa[op];
      if (m) out.push(...[...m.values()].sort((a, b) => a.serviceAction! - b.serviceAction!));
    }
    return out;
  }
}
