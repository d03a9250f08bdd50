/**
 * SPC-4 primary commands: TEST UNIT READY, REQUEST SENSE, INQUIRY, MODE SENSE/SELECT(6/10),
 * REPORT LUNS, REPORT SUPPORTED OPERATION CODES, REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS.
 */
import { ACTIVE_OR_STANDBY, ANY_STATE } from './alua.js';
import { Op, Sa, truncate, CONTROL_USAGE, FIELD32_USAGE } from './cdb.js';
import type { CommandDescriptor, CommandTable, DeviceContext, Modification } from './command-table.js';
import type { LogicalUnit } from './logical-unit.js';
import { encodeLun } from './lun-address.js';
import { modeSelect, modeSense } from './mode-pages.js';
import {
  Asc,
  SenseKey,
  fixedSense,
  fixedToDescriptorSense,
  good,
  invalidFieldInCdb,
  logicalUnitNotSupported,
} from './sense.js';
import { PrinSa } from './pr-in.js';
import { ProutSa } from './pr-out.js';
import type { ScsiRequest, ScsiResponse } from './types.js';
import { PQ_NOT_CONNECTED_UNKNOWN, standardInquiry, vpdPage, type InquiryIdentity } from './vpd.js';

function testUnitReady(): ScsiResponse {
  return good();
}

/**
 * INQUIRY, SPC-4 §6.6. EVPD = 0 with a nonzero PAGE CODE, an unsupported VPD page, or the
 * obsolete CMDDT bit → INVALID FIELD IN CDB.
 */
export function inquiry(id: InquiryIdentity, req: ScsiRequest): ScsiResponse {
  const c = req.cdb;
  const alloc = c.readUInt16BE(3);
  if (c[1]! & 0x02) return invalidFieldInCdb(1, 1);
  if ((c[1]! & 0x01) === 0) {
    if (c[2] !== 0) return invalidFieldInCdb(2);
    return good(truncate(standardInquiry(id), alloc));
  }
  const page = vpdPage(id, c[2]!, req.nexus.targetPort);
  if (!page) return invalidFieldInCdb(2);
  return good(truncate(page, alloc));
}

/**
 * INQUIRY to a LUN without a logical unit: standard data with PERIPHERAL QUALIFIER 011b and
 * DEVICE TYPE 1Fh (SPC-4 §6.6.2); VPD pages → ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED.
 */
export function inquiryNoLun(req: ScsiRequest, vendor: Pick<InquiryIdentity, 'vendor' | 'product' | 'revision'>): ScsiResponse {
  const c = req.cdb;
  if (c[1]! & 0x02) return invalidFieldInCdb(1, 1);
  if (c[1]! & 0x01) return logicalUnitNotSupported();
  if (c[2] !== 0) return invalidFieldInCdb(2);
  return good(truncate(standardInquiry(vendor, PQ_NOT_CONNECTED_UNKNOWN), c.readUInt16BE(3)));
}

/**
 * REQUEST SENSE, SPC-4 §6.39: returns (and clears) the oldest pending unit attention, else NO SENSE.
 * DESC = 1 is honoured: SPC-4 lets the device server return descriptor format here even though
 * CHECK CONDITION sense stays fixed format (D_SENSE = 0 in the Control mode page).
 */
function requestSense(lu: LogicalUnit, req: ScsiRequest): ScsiResponse {
  const code = lu.unitAttentions.take(req.nexus);
  const sense =
    code === undefined
      ? fixedSense(SenseKey.NO_SENSE, 0, 0)
      : fixedSense(SenseKey.UNIT_ATTENTION, code >> 8, code & 0xff);
  return senseData(req, sense);
}

/** REQUEST SENSE addressed to a LUN without a logical unit: parameter data LOGICAL UNIT NOT SUPPORTED (SPC-4 §6.39). */
export function requestSenseNoLun(req: ScsiRequest): ScsiResponse {
  const a = Asc.LOGICAL_UNIT_NOT_SUPPORTED;
  return senseData(req, fixedSense(SenseKey.ILLEGAL_REQUEST, a >> 8, a & 0xff));
}

function senseData(req: ScsiRequest, fixed: Buffer): ScsiResponse {
  const c = req.cdb;
  const data = c[1]! & 0x01 ? fixedToDescriptorSense(fixed) : fixed;
  return good(truncate(data, c[4]!));
}

/**
 * REPORT LUNS, SPC-4 §6.33. SELECT REPORT 00h and 02h list every logical unit, 01h the well-known
 * ones (none here); anything else, or an ALLOCATION LENGTH below 16, is INVALID FIELD IN CDB.
 */
export function reportLuns(req: ScsiRequest, luns: readonly number[]): ScsiResponse {
  const c = req.cdb;
  const alloc = c.readUInt32BE(6);
  if (alloc < 16) return invalidFieldInCdb(6);
  let list: readonly number[];
  switch (c[2]) {
    case 0x00:
    case 0x02:
      list = luns;
      break;
    case 0x01:
      list = [];
      break;
    default:
      return invalidFieldInCdb(2);
  }
  const out = Buffer.alloc(8 + 8 * list.length);
  out.writeUInt32BE(8 * list.length, 0);
  for (let i = 0; i < list.length; i++) encodeLun(list[i]!, out, 8 + 8 * i);
  return good(truncate(out, alloc));
}

// --- REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35) -----------------------------------------

/** Command timeouts descriptor (SPC-4 §6.35.4): length 0Ah, timeouts 0 = not specified. */
const TIMEOUTS_DESCRIPTOR_LENGTH = 12;

function writeTimeouts(b: Buffer, o: number): void {
  b.writeUInt16BE(0x0a, o);
}

/** Answer REPORT SUPPORTED OPERATION CODES from the dispatch table itself. */
export function reportSupportedOpcodes(table: CommandTable, req: ScsiRequest, lu?: LogicalUnit): ScsiResponse {
  const c = req.cdb;
  const here = (d: CommandDescriptor | undefined): CommandDescriptor | undefined =>
    d !== undefined && lu !== undefined && d.available !== undefined && !d.available(lu) ? undefined : d;
  const rctd = (c[2]! & 0x80) !== 0;
  const options = c[2]! & 0x07;
  const reqOp = c[3]!;
  const reqSa = c.readUInt16BE(4);
  const alloc = c.readUInt32BE(6);

  if (options === 0) {
    const all = table.all().filter((d) => here(d) !== undefined);
    const dlen = 8 + (rctd ? TIMEOUTS_DESCRIPTOR_LENGTH : 0);
    const out = Buffer.alloc(4 + all.length * dlen);
    out.writeUInt32BE(all.length * dlen, 0);
    for (let i = 0; i < all.length; i++) {
      const d = all[i]!;
      const o = 4 + i * dlen;
      out[o] = d.opcode;
      if (d.serviceAction !== undefined) out.writeUInt16BE(d.serviceAction, o + 2);
      out[o + 5] = (rctd ? 0x02 : 0) | (d.serviceAction !== undefined ? 0x01 : 0); // CTDP, SERVACTV
      out.writeUInt16BE(d.usage.length, o + 6);
      if (rctd) writeTimeouts(out, o + 8);
    }
    return good(truncate(out, alloc));
  }

  let d: CommandDescriptor | undefined;
  const hasSa = table.hasServiceActions(reqOp);
  switch (options) {
    case 1: // by opcode; the opcode must not have service actions
      if (hasSa) return invalidFieldInCdb(2, 2);
      d = table.get(reqOp);
      break;
    case 2: // by opcode + service action; the opcode must have service actions
      if (!hasSa) {
        if (table.get(reqOp)) return invalidFieldInCdb(2, 2);
        break; // unknown opcode: not supported
      }
      d = reqSa <= 0x1f ? table.get(reqOp, reqSa) : undefined;
      break;
    case 3: // either (SPC-4 r36+)
      d = hasSa ? (reqSa <= 0x1f ? table.get(reqOp, reqSa) : undefined) : table.get(reqOp);
      break;
    default:
      return invalidFieldInCdb(2, 2);
  }
  d = here(d);
  if (!d) {
    const out = Buffer.alloc(4);
    out[1] = 0x01; // SUPPORT 001b: not supported
    return good(truncate(out, alloc));
  }
  const n = d.usage.length;
  const out = Buffer.alloc(4 + n + (rctd ? TIMEOUTS_DESCRIPTOR_LENGTH : 0));
  out[1] = (rctd ? 0x80 : 0) | 0x03; // CTDP, SUPPORT 011b: supported as the standard defines
  out.writeUInt16BE(n, 2);
  for (let i = 0; i < n; i++) out[4 + i] = d.usage[i]!;
  if (rctd) writeTimeouts(out, 4 + n);
  return good(truncate(out, alloc));
}

/**
 * REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, SPC-4 §6.36: ABORT TASK, ABORT TASK SET,
 * CLEAR TASK SET, LOGICAL UNIT RESET, TARGET RESET (iSCSI TARGET WARM/COLD RESET).
 */
function reportSupportedTmfs(_lu: LogicalUnit, req: ScsiRequest): ScsiResponse {
  const c = req.cdb;
  const repd = (c[2]! & 0x80) !== 0;
  const out = Buffer.alloc(repd ? 16 : 4);
  out[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x02; // ATS, ATSS, CTSS, LURS, TRS
  if (repd) out[3] = 0x0c; // ADDITIONAL DATA LENGTH
  return good(truncate(out, c.readUInt32BE(6)));
}

// --- reservations (SPC-2 RESERVE/RELEASE, SPC-4 PERSISTENT RESERVE IN/OUT) -------------------

/**
 * RESERVE(6)/(10), RELEASE(6)/(10) (SPC-2 §7.21-§7.24): logical unit reservations only. Third
 * party reservations (3RDPTY) and extents are not supported: INVALID FIELD IN CDB.
 */
function reserveRelease(lu: LogicalUnit, req: ScsiRequest, reserve: boolean): ScsiResponse {
  const b1 = req.cdb[1]!;
  if (b1 & 0x10) return invalidFieldInCdb(1, 4); // 3RDPTY
  if (b1 & 0x01) return invalidFieldInCdb(1, 0); // EXTENT
  return reserve ? lu.reservations.reserve(req.nexus) : lu.reservations.release(req.nexus);
}

const PRIN_NAMES: Record<number, string> = {
  [PrinSa.READ_KEYS]: 'READ KEYS',
  [PrinSa.READ_RESERVATION]: 'READ RESERVATION',
  [PrinSa.REPORT_CAPABILITIES]: 'REPORT CAPABILITIES',
  [PrinSa.READ_FULL_STATUS]: 'READ FULL STATUS',
};
const PROUT_NAMES: Record<number, string> = {
  [ProutSa.REGISTER]: 'REGISTER',
  [ProutSa.RESERVE]: 'RESERVE',
  [ProutSa.RELEASE]: 'RELEASE',
  [ProutSa.CLEAR]: 'CLEAR',
  [ProutSa.PREEMPT]: 'PREEMPT',
  [ProutSa.PREEMPT_AND_ABORT]: 'PREEMPT AND ABORT',
  [ProutSa.REGISTER_AND_IGNORE_EXISTING_KEY]: 'REGISTER AND IGNORE EXISTING KEY',
  [ProutSa.REGISTER_AND_MOVE]: 'REGISTER AND MOVE',
};
/** PROUT service actions whose SCOPE and TYPE fields are used. */
const PROUT_TYPED = new Set<number>([ProutSa.RESERVE, ProutSa.RELEASE, ProutSa.PREEMPT, ProutSa.PREEMPT_AND_ABORT]);

function persistentReservationCommands(): CommandDescriptor[] {
  const out: CommandDescriptor[] = [];
  for (const sa of Object.values(PrinSa)) {
    out.push({
      name: `PERSISTENT RESERVE IN (${PRIN_NAMES[sa]})`,
      opcode: Op.PERSISTENT_RESERVE_IN,
      serviceAction: sa,
      usage: [Op.PERSISTENT_RESERVE_IN, sa, 0, 0, 0, 0, 0, 0xff, 0xff, CONTROL_USAGE],
      reservation: 'pr',
      modifies: 'nothing',
      alua: ACTIVE_OR_STANDBY,
      handler: (lu, req) => lu.reservations.persistentReserveIn(req),
    });
  }
  for (const sa of Object.values(ProutSa)) {
    out.push({
      name: `PERSISTENT RESERVE OUT (${PROUT_NAMES[sa]})`,
      opcode: Op.PERSISTENT_RESERVE_OUT,
      serviceAction: sa,
      usage: [Op.PERSISTENT_RESERVE_OUT, sa, PROUT_TYPED.has(sa) ? 0xff : 0, 0, 0, ...FIELD32_USAGE, CONTROL_USAGE],
      reservation: 'pr',
      modifies: 'shared-state',
      alua: ACTIVE_OR_STANDBY,
      handler: (lu, req, dev) => lu.reservations.persistentReserveOut(req, dev),
    });
  }
  return out;
}

/**
 * MODE SELECT changes mode parameters every I_T nexus shares (SPC-4 §6.11); with a PARAMETER LIST
 * LENGTH of 0 it changes nothing.
 */
function modeSelectModifies(cdb: Buffer): Modification {
  const listLength = cdb[0] === Op.MODE_SELECT_10 ? cdb.readUInt16BE(7) : cdb[4]!;
  return listLength === 0 ? 'nothing' : 'shared-state';
}

// --- table ---------------------------------------------------------------------------------

export const SPC_COMMANDS: readonly CommandDescriptor[] = [
  // Answered in standby too (alua.ts): initiators (libiscsi, QEMU) test a path with it after login.
  { name: 'TEST UNIT READY', opcode: Op.TEST_UNIT_READY, usage: [Op.TEST_UNIT_READY, 0, 0, 0, 0, CONTROL_USAGE], reservation: 'allowed', modifies: 'nothing', alua: ACTIVE_OR_STANDBY, handler: testUnitReady },
  {
    name: 'REQUEST SENSE',
    opcode: Op.REQUEST_SENSE,
    usage: [Op.REQUEST_SENSE, 0x01, 0, 0, 0xff, CONTROL_USAGE],
    reservation: 'exempt',
    modifies: 'nothing',
    uaExempt: true,
    alua: ANY_STATE,
    handler: requestSense,
  },
  {
    name: 'INQUIRY',
    opcode: Op.INQUIRY,
    usage: [Op.INQUIRY, 0x01, 0xff, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'exempt',
    modifies: 'nothing',
    uaExempt: true,
    alua: ANY_STATE,
    handler: (lu, req) => inquiry(lu, req),
  },
  {
    name: 'MODE SELECT(6)',
    opcode: Op.MODE_SELECT_6,
    usage: [Op.MODE_SELECT_6, 0x11, 0, 0, 0xff, CONTROL_USAGE],
    modifies: modeSelectModifies,
    alua: ACTIVE_OR_STANDBY,
    handler: (lu, req) => modeSelect(lu, req, false),
  },
  {
    name: 'MODE SENSE(6)',
    opcode: Op.MODE_SENSE_6,
    usage: [Op.MODE_SENSE_6, 0x08, 0xff, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    alua: ACTIVE_OR_STANDBY,
    handler: (lu, req) => modeSense(lu, req, false),
  },
  {
    name: 'MODE SELECT(10)',
    opcode: Op.MODE_SELECT_10,
    usage: [Op.MODE_SELECT_10, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, CONTROL_USAGE],
    modifies: modeSelectModifies,
    alua: ACTIVE_OR_STANDBY,
    handler: (lu, req) => modeSelect(lu, req, true),
  },
  {
    name: 'MODE SENSE(10)',
    opcode: Op.MODE_SENSE_10,
    usage: [Op.MODE_SENSE_10, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    alua: ACTIVE_OR_STANDBY,
    handler: (lu, req) => modeSense(lu, req, true),
  },
  {
    name: 'REPORT LUNS',
    opcode: Op.REPORT_LUNS,
    usage: [Op.REPORT_LUNS, 0, 0xff, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'exempt',
    modifies: 'nothing',
    uaExempt: true,
    alua: ANY_STATE,
    handler: (_lu: LogicalUnit, req: ScsiRequest, dev: DeviceContext) => reportLuns(req, dev.lunNumbers()),
  },
  {
    name: 'REPORT SUPPORTED OPERATION CODES',
    opcode: Op.MAINTENANCE_IN,
    serviceAction: Sa.REPORT_SUPPORTED_OPERATION_CODES,
    usage: [Op.MAINTENANCE_IN, Sa.REPORT_SUPPORTED_OPERATION_CODES, 0x87, 0xff, 0xff, 0xff, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'allowed',
    modifies: 'nothing',
    handler: (lu, req) => reportSupportedOpcodes(lu.commands, req, lu),
  },
  {
    name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS',
    opcode: Op.MAINTENANCE_IN,
    serviceAction: Sa.REPORT_SUPPORTED_TMFS,
    usage: [Op.MAINTENANCE_IN, Sa.REPORT_SUPPORTED_TMFS, 0x80, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'allowed',
    modifies: 'nothing',
    handler: reportSupportedTmfs,
  },
  {
    name: 'RESERVE(6)',
    opcode: Op.RESERVE_6,
    usage: [Op.RESERVE_6, 0x11, 0, 0, 0, CONTROL_USAGE],
    reservation: 'spc2',
    modifies: 'shared-state',
    handler: (lu, req) => reserveRelease(lu, req, true),
  },
  {
    name: 'RELEASE(6)',
    opcode: Op.RELEASE_6,
    usage: [Op.RELEASE_6, 0x11, 0, 0, 0, CONTROL_USAGE],
    reservation: 'spc2',
    modifies: 'nothing',
    handler: (lu, req) => reserveRelease(lu, req, false),
  },
  {
    name: 'RESERVE(10)',
    opcode: Op.RESERVE_10,
    usage: [Op.RESERVE_10, 0x11, 0, 0, 0, 0, 0, 0, 0, CONTROL_USAGE],
    reservation: 'spc2',
    modifies: 'shared-state',
    handler: (lu, req) => reserveRelease(lu, req, true),
  },
  {
    name: 'RELEASE(10)',
    opcode: Op.RELEASE_10,
    usage: [Op.RELEASE_10, 0x11, 0, 0, 0, 0, 0, 0, 0, CONTROL_USAGE],
    reservation: 'spc2',
    modifies: 'nothing',
    handler: (lu, req) => reserveRelease(lu, req, false),
  },
  ...persistentReservationCommands(),
];
