/**
 * Target port groups (SPC-4 §5.15): REPORT TARGET PORT GROUPS (§6.37) and SET TARGET PORT GROUPS
 * (§6.45). Which groups exist and which state each is in is decided outside the SCSI layer (one
 * group per server serving the LU, see src/cluster); the device server reports it and passes
 * explicit requests on, through an `AluaCoordinator`.
 */
import { CONTROL_USAGE, FIELD32_USAGE, Op, Sa, truncate } from './cdb.js';
import type { CommandDescriptor } from './command-table.js';
import { ANY_STATE, ACTIVE_OR_STANDBY } from './alua.js';
import type { AluaState } from './alua.js';
import type { ItNexus } from './nexus.js';
import { SenseKey, checkCondition, good, invalidFieldInParameterList, parameterListLengthError } from './sense.js';
import type { AbortWatch, ScsiRequest, ScsiResponse } from './types.js';

/** STATUS CODE of a target port group descriptor (SPC-4 §6.37, Table 195). */
export type TpgStatus = 'none' | 'explicit' | 'implicit';

export interface TargetPortGroupInfo {
  /** TARGET PORT GROUP identifier (nonzero). */
  readonly id: number;
  readonly state: AluaState;
  /** RELATIVE TARGET PORT IDENTIFIERs of the ports in the group. */
  readonly relativePortIds: readonly number[];
  /** What caused the group's last state change. */
  readonly status: TpgStatus;
}

/** What the device server asks of whoever runs the target port groups of a logical unit. */
export interface AluaCoordinator {
  /** Every target port group of the LU, in one order, the same through every port. */
  groups(): readonly TargetPortGroupInfo[];
  /**
   * SET TARGET PORT GROUPS asked for group `groupId` to become active/optimized. Resolves when
   * the transition is complete (SPC-4 §6.45: the command completes after it), or with the
   * failure to report.
   */
  activate(groupId: number, issuer: ItNexus): Promise<ScsiResponse | undefined>;
  /**
   * A media command that this port's state refuses arrived (implicit ALUA, SPC-4 §5.15.2.8): the LU
   * may move here. Resolves once it has, or once it is clear (or too late) that it will not;
   * the command is then checked against the port's state as it is by then. Stops waiting once
   * `task` is aborted.
   */
  awaitAccess(task?: AbortWatch): Promise<void>;
}

/** ASYMMETRIC ACCESS STATE codes (SPC-4 §6.37, Table 194). */
const STATE_CODE: Record<AluaState, number> = {
  'active/optimized': 0x0,
  'active/non-optimized': 0x1,
  standby: 0x2,
  unavailable: 0x3,
  transitioning: 0xf,
};
const STATUS_CODE: Record<TpgStatus, number> = { none: 0, explicit: 1, implicit: 2 };
/** T_SUP, U_SUP, S_SUP, AO_SUP: the states a group of this device can be in (Table 193). */
const SUPPORTED_STATES = 0x80 | 0x08 | 0x04 | 0x01;
/** IMPLICIT TRANSITION TIME reported in the extended header, in seconds. */
export const IMPLICIT_TRANSITION_SECONDS = 10;

/** REPORT TARGET PORT GROUPS (MAINTENANCE IN, service action 0Ah), SPC-4 §6.37. */
export function reportTargetPortGroups(coordinator: AluaCoordinator, req: ScsiRequest): ScsiResponse {
  const c = req.cdb;
  const extended = ((c[1]! >> 5) & 0x07) === 0x01; // PARAMETER DATA FORMAT 001b
  const alloc = c.readUInt32BE(6);
  const descriptors = coordinator.groups().map((g) => {
    const d = Buffer.alloc(8 + 4 * g.relativePortIds.length);
    d[0] = STATE_CODE[g.state]; // PREF = 0
    d[1] = SUPPORTED_STATES;
    d.writeUInt16BE(g.id, 2);
    d[5] = STATUS_CODE[g.status];
    d[7] = g.relativePortIds.length;
    g.relativePortIds.forEach((id, i) => d.writeUInt16BE(id, 8 + 4 * i + 2));
    return d;
  });
  const body = Buffer.concat(descriptors);
  const header = Buffer.alloc(extended ? 8 : 4);
  header.writeUInt32BE(body.length + header.length - 4, 0); // RETURN DATA LENGTH
  if (extended) {
    header[4] = 0x10; // FORMAT TYPE 001b
    header[5] = IMPLICIT_TRANSITION_SECONDS;
  }
  return good(truncate(Buffer.concat([header, body]), alloc));
}

/**
 * SET TARGET PORT GROUPS (MAINTENANCE OUT, service action 0Ah), SPC-4 §6.45. A descriptor asking
 * for active/optimized moves the LU to that group (the others go to standby); standby for a
 * group that is not active is accepted as it is already so. Anything else — another state, an
 * unknown group, two groups active, the active group to standby without a successor — is an
 * INVALID FIELD IN PARAMETER LIST.
 */
export async function setTargetPortGroups(coordinator: AluaCoordinator, req: ScsiRequest): Promise<ScsiResponse> {
  const listLength = req.cdb.readUInt32BE(6);
  if (listLength === 0) return good();
  const data = req.dataOut;
  if (data === undefined || data.length < listLength || listLength < 4 || (listLength - 4) % 4 !== 0) return parameterListLengthError();
  const groups = coordinator.groups();
  let activate: number | undefined;
  for (let o = 4; o < listLength; o += 4) {
    const state = data[o]! & 0x0f;
    const id = data.readUInt16BE(o + 2);
    const group = groups.find((g) => g.id === id);
    if (group === undefined) return invalidFieldInParameterList(o + 2);
    if (state === STATE_CODE['active/optimized']) {
      if (activate !== undefined && activate !== id) return invalidFieldInParameterList(o);
      activate = id;
    } else if (state === STATE_CODE.standby) {
      if (group.state === 'active/optimized' && activate === undefined && !laterActivates(data, o + 4, listLength)) {
        return invalidFieldInParameterList(o);
      }
    } else {
      return invalidFieldInParameterList(o, 3);
    }
  }
  if (activate === undefined || groups.find((g) => g.id === activate)?.state === 'active/optimized') return good();
  return (await coordinator.activate(activate, req.nexus)) ?? good();
}

function laterActivates(data: Buffer, from: number, end: number): boolean {
  for (let o = from; o < end; o += 4) if ((data[o]! & 0x0f) === STATE_CODE['active/optimized']) return true;
  return false;
}

/** SET TARGET PORT GROUPS could not complete the transition (SPC-4 §6.45: ABORTED COMMAND, 67h/0Ah). */
export function setTargetPortGroupsFailed(): ScsiResponse {
  return checkCondition(SenseKey.ABORTED_COMMAND, 0x67, 0x0a);
}

const clustered = (lu: { readonly alua?: AluaCoordinator }): boolean => lu.alua !== undefined;

/** Present only on a logical unit whose target port groups are managed (LogicalUnitOptions.alua). */
export const TPG_COMMANDS: CommandDescriptor[] = [
  {
    name: 'REPORT TARGET PORT GROUPS',
    opcode: Op.MAINTENANCE_IN,
    serviceAction: Sa.REPORT_TARGET_PORT_GROUPS,
    usage: [Op.MAINTENANCE_IN, 0xe0 | Sa.REPORT_TARGET_PORT_GROUPS, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    available: clustered,
    reservation: 'exempt',
    modifies: 'nothing',
    alua: ANY_STATE,
    handler: (lu, req) => reportTargetPortGroups(lu.alua!, req),
  },
  {
    name: 'SET TARGET PORT GROUPS',
    opcode: Op.MAINTENANCE_OUT,
    serviceAction: Sa.SET_TARGET_PORT_GROUPS,
    usage: [Op.MAINTENANCE_OUT, Sa.SET_TARGET_PORT_GROUPS, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    available: clustered,
    // SPC-4 Table 52 lists SET TARGET PORT GROUPS as conflicting under Exclusive Access types.
    reservation: 'write',
    modifies: 'shared-state',
    alua: ACTIVE_OR_STANDBY,
    handler: (lu, req) => setTargetPortGroups(lu.alua!, req),
  },
];
