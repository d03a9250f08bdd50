import { ScsiStatus, type ScsiResponse } from './types.js';
import { isOutOfSpace } from '../backend/out-of-space.js';

/** SPC-4 §4.5.6 sense keys. */
export const SenseKey = {
  NO_SENSE: 0x00,
  RECOVERED_ERROR: 0x01,
  NOT_READY: 0x02,
  MEDIUM_ERROR: 0x03,
  HARDWARE_ERROR: 0x04,
  ILLEGAL_REQUEST: 0x05,
  UNIT_ATTENTION: 0x06,
  DATA_PROTECT: 0x07,
  COPY_ABORTED: 0x0a,
  ABORTED_COMMAND: 0x0b,
  MISCOMPARE: 0x0e,
} as const;

/** SPC-4 §4.5.6 Table 28 additional sense codes, as (ASC << 8) | ASCQ. */
export const Asc = {
  NO_ADDITIONAL_SENSE: 0x0000,
  LOGICAL_UNIT_NOT_READY_MANUAL_INTERVENTION_REQUIRED: 0x0403,
  LOGICAL_UNIT_NOT_ACCESSIBLE_TRANSITIONING: 0x040a,
  LOGICAL_UNIT_COMMUNICATION_TIME_OUT: 0x0801,
  UNREACHABLE_COPY_TARGET: 0x0804,
  COPY_TARGET_DEVICE_NOT_REACHABLE: 0x0d02,
  WRITE_ERROR: 0x0c00,
  INVALID_FIELD_IN_INFORMATION_UNIT: 0x0e03,
  UNRECOVERED_READ_ERROR: 0x1100,
  PARAMETER_LIST_LENGTH_ERROR: 0x1a00,
  MISCOMPARE_DURING_VERIFY: 0x1d00,
  INVALID_COMMAND_OPERATION_CODE: 0x2000,
  LBA_OUT_OF_RANGE: 0x2100,
  INVALID_FIELD_IN_CDB: 0x2400,
  LOGICAL_UNIT_NOT_SUPPORTED: 0x2500,
  INVALID_FIELD_IN_PARAMETER_LIST: 0x2600,
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION: 0x2604,
  TOO_MANY_TARGET_DESCRIPTORS: 0x2606,
  UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: 0x2607,
  TOO_MANY_SEGMENT_DESCRIPTORS: 0x2608,
  UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: 0x2609,
  UNEXPECTED_INEXACT_SEGMENT: 0x260a,
  WRITE_PROTECTED: 0x2700,
  SPACE_ALLOCATION_FAILED_WRITE_PROTECT: 0x2707,
  POWER_ON_RESET_OR_BUS_DEVICE_RESET: 0x2900,
  POWER_ON_OCCURRED: 0x2901,
  BUS_DEVICE_RESET_FUNCTION_OCCURRED: 0x2903,
  I_T_NEXUS_LOSS_OCCURRED: 0x2907,
  MODE_PARAMETERS_CHANGED: 0x2a01,
  RESERVATIONS_PREEMPTED: 0x2a03,
  RESERVATIONS_RELEASED: 0x2a04,
  REGISTRATIONS_PREEMPTED: 0x2a05,
  ASYMMETRIC_ACCESS_STATE_CHANGED: 0x2a06,
  CAPACITY_DATA_HAS_CHANGED: 0x2a09,
  COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: 0x2f00,
  SAVING_PARAMETERS_NOT_SUPPORTED: 0x3900,
  REPORTED_LUNS_DATA_HAS_CHANGED: 0x3f0e,
  INTERNAL_TARGET_FAILURE: 0x4400,
  INSUFFICIENT_REGISTRATION_RESOURCES: 0x5504,
} as const;

/** Sense-key specific field pointer (SPC-4 §4.5.2.4.2). */
export interface FieldPointer {
  /** true: the error is in the CDB; false: in the parameter list (Data-Out). */
  cd: boolean;
  byte: number;
  /** Bit within the byte (0-7); omitted = BPV 0. */
  bit?: number;
}

export interface SenseOptions {
  /** INFORMATION field (sets VALID). Fixed format holds 32 bits. */
  info?: number;
  field?: FieldPointer;
}

export const FIXED_SENSE_LENGTH = 18;

/** Fixed-format sense data, SPC-4 §4.5.3: response code 70h, additional length 10. */
export function fixedSense(key: number, asc: number, ascq: number, opts?: SenseOptions): Buffer {
  const b = Buffer.alloc(FIXED_SENSE_LENGTH);
  b[0] = 0x70;
  b[2] = key & 0x0f;
  b[7] = 10;
  b[12] = asc;
  b[13] = ascq;
  if (opts) {
    if (opts.info !== undefined && opts.info >= 0 && opts.info <= 0xffffffff) {
      b[0] |= 0x80; // VALID
      b.writeUInt32BE(opts.info, 3);
    }
    const f = opts.field;
    if (f) {
      // SKSV | C/D | BPV | bit pointer, then the field pointer.
      b[15] = 0x80 | (f.cd ? 0x40 : 0) | (f.bit !== undefined ? 0x08 | (f.bit & 7) : 0);
      b.writeUInt16BE(f.byte & 0xffff, 16);
    }
  }
  return b;
}

/**
 * Re-express fixed sense as descriptor-format sense (SPC-4 §4.5.2): response code 72h with an
 * information descriptor (§4.5.2.2) and a sense-key specific descriptor (§4.5.2.3) when present.
 */
export function fixedToDescriptorSense(fixed: Buffer): Buffer {
  const hasInfo = (fixed[0]! & 0x80) !== 0;
  const hasSks = (fixed[15]! & 0x80) !== 0;
  const len = 8 + (hasInfo ? 12 : 0) + (hasSks ? 8 : 0);
  const b = Buffer.alloc(len);
  b[0] = 0x72;
  b[1] = fixed[2]! & 0x0f;
  b[2] = fixed[12]!;
  b[3] = fixed[13]!;
  b[7] = len - 8;
  let o = 8;
  if (hasInfo) {
    b[o] = 0x00; // information descriptor
    b[o + 1] = 0x0a;
    b[o + 2] = 0x80; // VALID
    b.writeUInt32BE(fixed.readUInt32BE(3), o + 8); // 8-byte INFORMATION, upper half zero
    o += 12;
  }
  if (hasSks) {
    b[o] = 0x02; // sense key specific descriptor
    b[o + 1] = 0x06;
    fixed.copy(b, o + 4, 15, 18);
  }
  return b;
}

export function checkCondition(key: number, asc: number, ascq: number, opts?: SenseOptions): ScsiResponse {
  return { status: ScsiStatus.CheckCondition, sense: fixedSense(key, asc, ascq, opts) };
}

/** CHECK CONDITION with an Asc constant (ASC << 8 | ASCQ). */
export function senseError(key: number, ascAscq: number, opts?: SenseOptions): ScsiResponse {
  return checkCondition(key, ascAscq >> 8, ascAscq & 0xff, opts);
}

export function good(data?: Buffer): ScsiResponse {
  return data === undefined ? { status: ScsiStatus.Good } : { status: ScsiStatus.Good, data };
}

// --- the common failures -------------------------------------------------------------------

/** ILLEGAL REQUEST / INVALID FIELD IN CDB with the SKSV field pointer (SPC-4 §4.5.2.4.2). */
export function invalidFieldInCdb(byte: number, bit?: number): ScsiResponse {
  return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, {
    field: bit === undefined ? { cd: true, byte } : { cd: true, byte, bit },
  });
}

/** ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST, pointing into the Data-Out buffer. */
export function invalidFieldInParameterList(byte: number, bit?: number): ScsiResponse {
  return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_PARAMETER_LIST, {
    field: bit === undefined ? { cd: false, byte } : { cd: false, byte, bit },
  });
}

export function parameterListLengthError(): ScsiResponse {
  return senseError(SenseKey.ILLEGAL_REQUEST, Asc.PARAMETER_LIST_LENGTH_ERROR);
}

export function invalidOpcode(): ScsiResponse {
  return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_COMMAND_OPERATION_CODE, { field: { cd: true, byte: 0 } });
}

/** RESERVATION CONFLICT status (SAM-5 §5.3.1): no sense data. */
export function reservationConflict(): ScsiResponse {
  return { status: ScsiStatus.ReservationConflict };
}

export function lbaOutOfRange(): ScsiResponse {
  return senseError(SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
}

export function logicalUnitNotSupported(): ScsiResponse {
  return senseError(SenseKey.ILLEGAL_REQUEST, Asc.LOGICAL_UNIT_NOT_SUPPORTED);
}

export function writeProtected(): ScsiResponse {
  return senseError(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
}

export function internalTargetFailure(): ScsiResponse {
  return senseError(SenseKey.HARDWARE_ERROR, Asc.INTERNAL_TARGET_FAILURE);
}

/** Whether a backend failure is the storage not answering in time (bounded-backend.ts, or the file system's own ETIMEDOUT). */
export function storageTimedOut(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ETIMEDOUT';
}

/**
 * The backend does not serve the medium through this port now (ENOTOWNER: another server owns
 * the LU, or this one just lost the volume): NOT READY, ASYMMETRIC ACCESS STATE TRANSITION
 * (SPC-4 §5.15.2.6). Linux takes it as a path error, which dm-multipath retries through another
 * node; nothing was transferred.
 */
function notServedHere(err: unknown): ScsiResponse | undefined {
  if ((err as { code?: unknown } | null)?.code !== 'ENOTOWNER') return undefined;
  return senseError(SenseKey.NOT_READY, Asc.LOGICAL_UNIT_NOT_ACCESSIBLE_TRANSITIONING);
}

/**
 * The storage did not answer in time: NOT READY / LOGICAL UNIT COMMUNICATION TIME-OUT (SPC-4
 * §4.5.6: NOT READY, "the logical unit is not accessible"; 08h/01h). Not MEDIUM ERROR: nothing is
 * known about the medium, and Linux fails a MEDIUM ERROR up to the file system while it treats this
 * as a path error, which dm-multipath retries on another path. LIO answers its backends' time-outs
 * with NOT READY too (08h/00h).
 */
export function storageTimeout(): ScsiResponse {
  return senseError(SenseKey.NOT_READY, Asc.LOGICAL_UNIT_COMMUNICATION_TIME_OUT);
}

/** Backend read failure: MEDIUM ERROR / UNRECOVERED READ ERROR (SBC-3 §4.13 / SPC-4 Table 28), or `storageTimeout`. */
export function readError(err?: unknown): ScsiResponse {
  if (storageTimedOut(err)) return storageTimeout();
  const elsewhere = notServedHere(err);
  if (elsewhere !== undefined) return elsewhere;
  return senseError(SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR);
}

/**
 * Backend write or flush failure. Out of space (ENOSPC/EDQUOT — thin-provisioned or quota-limited
 * volume) maps to DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT, the sense SBC-3 §4.7.3
 * (logical block provisioning, resource exhaustion) specifies for a write that cannot get backing
 * storage — what LIO reports too. Anything else (EIO, a failed fdatasync) is MEDIUM ERROR /
 * WRITE ERROR: the data did not reach the medium (SPC-4 §4.5.6: MEDIUM ERROR covers flaws in the
 * medium or recorded data); never GOOD. A write the storage did not answer in time is
 * `storageTimeout`: it may still land, so it is not reported done either.
 */
export function writeError(err: unknown): ScsiResponse {
  if (storageTimedOut(err)) return storageTimeout();
  const elsewhere = notServedHere(err);
  if (elsewhere !== undefined) return elsewhere;
  if (isOutOfSpace(err)) return senseError(SenseKey.DATA_PROTECT, Asc.SPACE_ALLOCATION_FAILED_WRITE_PROTECT);
  return senseError(SenseKey.MEDIUM_ERROR, Asc.WRITE_ERROR);
}

/**
 * Why a transport ended a command whose data transfer failed, or that it could not accept.
 * The iSCSI-specific conditions are those of RFC 7143 §11.4.7.2 (ABORTED COMMAND, ASC 0Ch/47h).
 */
export type TransferFailure =
  | 'unexpected-unsolicited-data'
  | 'incorrect-amount-of-data'
  | 'data-digest-error'
  | 'bidirectional-command'
  | 'transfer-too-long'
  | 'initiator-response-timeout';

const TRANSFER_FAILURE_SENSE: Record<TransferFailure, readonly [number, number, number]> = {
  'unexpected-unsolicited-data': [SenseKey.ABORTED_COMMAND, 0x0c, 0x0c],
  'incorrect-amount-of-data': [SenseKey.ABORTED_COMMAND, 0x0c, 0x0d],
  'data-digest-error': [SenseKey.ABORTED_COMMAND, 0x47, 0x05], // PROTOCOL SERVICE CRC ERROR
  // No implemented command is bidirectional; oversized transfers exceed the Block Limits page.
  'bidirectional-command': [SenseKey.ILLEGAL_REQUEST, 0x24, 0x00],
  'transfer-too-long': [SenseKey.ILLEGAL_REQUEST, 0x24, 0x00],
  // Solicited or unsolicited Data-Out did not come in time: SPC-4 INITIATOR RESPONSE TIMEOUT.
  'initiator-response-timeout': [SenseKey.ABORTED_COMMAND, 0x4b, 0x06],
};

/** The CHECK CONDITION a command ended by a transport failure answers with. */
export function transferFailed(why: TransferFailure): ScsiResponse {
  const [key, asc, ascq] = TRANSFER_FAILURE_SENSE[why];
  return checkCondition(key, asc, ascq);
}
