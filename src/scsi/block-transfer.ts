/**
 * What the SBC-3 block transfer commands (READ, WRITE, VERIFY, WRITE AND VERIFY, ORWRITE, COMPARE
 * AND WRITE) share: the CDB fields, the opening checks, and how much of the Data-Out is usable.
 */
import { cdbLengthOfOpcode, readU64 } from './cdb.js';
import type { LogicalUnit } from './logical-unit.js';
import { Asc, SenseKey, invalidFieldInCdb, lbaOutOfRange, senseError, writeError } from './sense.js';
import { ScsiStatus, type ScsiResponse, type TaskHandle } from './types.js';

/** LOGICAL BLOCK ADDRESS, TRANSFER LENGTH (and the byte it starts at) and FUA of a block CDB. */
export interface BlockCdb {
  lba: number;
  blocks: number;
  lengthByte: number;
  fua: boolean;
}

/**
 * The fields of READ/WRITE/VERIFY-shaped CDBs, by the CDB length the opcode's group gives (the
 * transport's CDB may be longer: iSCSI carries 16 bytes) (SBC-3 §5): (6) 21-bit LBA, TRANSFER
 * LENGTH 0 = 256 blocks, no FUA; (10) LBA bytes 2-5, length bytes 7-8; (12) length bytes 6-9;
 * (16) LBA bytes 2-9, length bytes 10-13. FUA is byte 1 bit 3.
 */
export function blockCdb(c: Buffer): BlockCdb {
  const fua = (c[1]! & 0x08) !== 0;
  switch (cdbLengthOfOpcode(c[0]!)) {
    case 6:
      return { lba: ((c[1]! & 0x1f) << 16) | c.readUInt16BE(2), blocks: c[4] === 0 ? 256 : c[4]!, lengthByte: 4, fua: false };
    case 10:
      return { lba: c.readUInt32BE(2), blocks: c.readUInt16BE(7), lengthByte: 7, fua };
    case 12:
      return { lba: c.readUInt32BE(2), blocks: c.readUInt32BE(6), lengthByte: 6, fua };
    default:
      return { lba: readU64(c, 2), blocks: c.readUInt32BE(10), lengthByte: 10, fua };
  }
}

/**
 * SBC-3 (READ/WRITE/VERIFY/SYNCHRONIZE CACHE): an LBA at or past the capacity, or a range running past the last block, is
 * LOGICAL BLOCK ADDRESS OUT OF RANGE — also with a zero transfer length.
 */
export function outOfRange(lu: LogicalUnit, lba: number, blocks: number): boolean {
  return lba >= lu.blocks || blocks > lu.blocks - lba;
}

/**
 * RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT (byte 1 bits 7-5) ≠ 0 asks for protection
 * information, which this device server does not have (PROTECT = 0 in READ CAPACITY(16)): INVALID FIELD IN CDB
 * (SBC-3 READ(10) RDPROTECT, WRITE(10) WRPROTECT).
 */
export function protectionFieldSet(c: Buffer): ScsiResponse | undefined {
  return c[1]! & 0xe0 ? invalidFieldInCdb(1, 7) : undefined;
}

/**
 * The opening checks of a block transfer, in this order: the protection field (CDBs of 10 bytes
 * and more), the range (LOGICAL BLOCK ADDRESS OUT OF RANGE, even for a zero length), then more
 * than `maxBlocks` (the Block Limits VPD MAXIMUM TRANSFER LENGTH by default): SBC-3 §6.5.3 INVALID
 * FIELD IN CDB pointing at the length. Returns the response that ends the command, if any; a zero
 * length passes (the caller ends it with GOOD where SBC-3 says it is not an error).
 */
export function openBlockTransfer(
  lu: LogicalUnit, c: Buffer, lba: number, blocks: number, lengthByte: number, maxBlocks = lu.maxTransferBlocks,
): ScsiResponse | undefined {
  if (cdbLengthOfOpcode(c[0]!) > 6) {
    const bad = protectionFieldSet(c);
    if (bad !== undefined) return bad;
  }
  if (outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  if (blocks > maxBlocks) return invalidFieldInCdb(lengthByte);
  return undefined;
}

/** A write command that passed its opening checks (`openWrite`). */
export interface OpenedWrite {
  lba: number;
  blocks: number;
  /** Durable before status: FUA, or the write cache is off (SBC-3 WRITE(10) FUA, caching mode page WCE). */
  durable: boolean;
  /** Bytes the CDB asks for; the transport reports residuals against it (iSCSI EDTL ≠ SCSI transfer length). */
  transferLength: number;
}

/**
 * The opening of WRITE(6/10/12/16), ORWRITE(16) and WRITE AND VERIFY(10/12/16): the CDB fields
 * (`blockCdb`; DPO is a cache hint and ignored) and `openBlockTransfer`'s checks. A zero transfer
 * length ends the command with GOOD (SBC-3: not an error). Write protection is a rule of the
 * command descriptor, checked before the handler runs.
 */
export function openWrite(lu: LogicalUnit, c: Buffer): OpenedWrite | ScsiResponse {
  const { lba, blocks, lengthByte, fua } = blockCdb(c);
  const refused = openBlockTransfer(lu, c, lba, blocks, lengthByte);
  if (refused !== undefined) return refused;
  if (blocks === 0) return { status: ScsiStatus.Good };
  return { lba, blocks, durable: fua || !lu.writeCache, transferLength: blocks * lu.blockSize };
}

/**
 * The Data-Out of an opened write that can be written: its whole blocks up to the transfer
 * length (see `usableBytes`), or the response that ends the command (a trailing partial block;
 * no data at all is GOOD).
 */
export function writeData(w: OpenedWrite, dataOut: Buffer | undefined, blockSize: number): Buffer | ScsiResponse {
  const n = usableBytes(dataOut, w.transferLength, blockSize);
  if (n === PARTIAL_BLOCK) return { ...partialBlock(), transferLength: w.transferLength };
  if (n === 0) return { status: ScsiStatus.Good, transferLength: w.transferLength };
  return dataOut!.length === n ? dataOut! : dataOut!.subarray(0, n);
}

/**
 * The transport hands over min(EDTL, CDB transfer length) bytes. When the initiator's expected
 * data transfer length was shorter than the CDB asked for (RFC 7143 §11.4.5 residual overflow),
 * write/compare the whole blocks that did arrive and report GOOD (the transport reports the
 * residual) — the behaviour libiscsi's residual tests expect. A trailing partial block cannot be
 * written: ILLEGAL REQUEST / INVALID FIELD IN INFORMATION UNIT (0Eh/03h), which those tests also
 * accept and LIO reports.
 */
export const PARTIAL_BLOCK = -1;
export function usableBytes(data: Buffer | undefined, need: number, blockSize: number): number {
  const have = data === undefined ? 0 : data.length;
  if (have >= need) return need;
  return have % blockSize === 0 ? have : PARTIAL_BLOCK;
}

export function partialBlock(): ScsiResponse {
  return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_INFORMATION_UNIT);
}

/**
 * Run `writes` (non-durable backend writes of [lba, lba + blocks)) under the shared range lock:
 * concurrent writes proceed, but never inside a COMPARE AND WRITE (or other read-modify-write) of
 * an overlapping range. With `durable` (FUA, WCE = 0) the file is flushed before status. A failure
 * ends the command with the write error sense, never GOOD.
 */
export async function writeUnderSharedLock(
  lu: LogicalUnit, lba: number, blocks: number, durable: boolean, transferLength: number, writes: () => Promise<void>,
  task?: TaskHandle,
): Promise<ScsiResponse> {
  // Uncontended, the lock is granted synchronously; an aborted task stops waiting (SAM-5 §7.2).
  let release = lu.locks.acquire(lba, blocks, false, task);
  if (typeof release !== 'function') release = await release;
  try {
    await writes();
    if (durable) await lu.backend.flush(task);
  } catch (err) {
    return { ...writeError(err), transferLength };
  } finally {
    release();
  }
  return { status: ScsiStatus.Good, transferLength };
}
