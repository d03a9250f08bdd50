/**
 * SBC-3 block commands: READ/WRITE(6/10/12/16), VERIFY(10/12/16), READ CAPACITY(10/16),
 * SYNCHRONIZE CACHE(10/16), START STOP UNIT.
 */
import { Op, Sa, readU64, truncate, writeU64, CONTROL_USAGE, FIELD32_USAGE, FIELD64_USAGE } from './cdb.js';
import type { CommandDescriptor } from './command-table.js';
import type { LogicalUnit } from './logical-unit.js';
import {
  Asc,
  SenseKey,
  good,
  invalidFieldInCdb,
  lbaOutOfRange,
  readError,
  senseError,
  writeError,
  writeProtected,
} from './sense.js';
import { ScsiStatus, type DataOutStream, type ScsiRequest, type ScsiResponse } from './types.js';

/**
 * SBC-3 (READ/WRITE/VERIFY/SYNCHRONIZE CACHE): an LBA at or past the capacity, or a range running past the last block, is
 * LOGICAL BLOCK ADDRESS OUT OF RANGE — also with a zero transfer length.
 */
export function outOfRange(lu: LogicalUnit, lba: number, blocks: number): boolean {
  return lba >= lu.blocks || blocks > lu.blocks - lba;
}

/**
 * Transfer length above the Block Limits VPD MAXIMUM TRANSFER LENGTH: SBC-3 §6.5.3 requires
 * INVALID FIELD IN CDB (callers point the SKSV field pointer at TRANSFER LENGTH).
 */
export function tooLong(lu: LogicalUnit, blocks: number): boolean {
  return blocks > lu.maxTransferBlocks;
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

// --- READ ----------------------------------------------------------------------------------

function readBlocks(
  lu: LogicalUnit,
  req: ScsiRequest,
  lba: number,
  blocks: number,
  lenByte: number,
): ScsiResponse | Promise<ScsiResponse> {
  if (outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  if (blocks === 0) return { status: ScsiStatus.Good }; // SBC-3: a zero transfer length is not an error
  if (tooLong(lu, blocks)) return invalidFieldInCdb(lenByte);
  const full = blocks * lu.blockSize;
  // Bytes beyond the expected data transfer length would be dropped by the transport anyway;
  // the full length is still reported so the transport can signal the residual overflow.
  const len = Math.min(full, Math.max(req.dataInLength, 0));
  if (len === 0) return { status: ScsiStatus.Good, transferLength: full };
  const offered = req.dataInBuffer;
  const buf = offered !== undefined && offered.length >= len ? offered.subarray(0, len) : Buffer.allocUnsafe(len);
  return readInto(lu, buf, lba * lu.blockSize, full);
}

async function readInto(lu: LogicalUnit, buf: Buffer, offset: number, transferLength: number): Promise<ScsiResponse> {
  try {
    await lu.backend.read(buf, offset);
  } catch {
    return readError();
  }
  return transferLength === buf.length ? { status: ScsiStatus.Good, data: buf } : { status: ScsiStatus.Good, data: buf, transferLength };
}

function read6(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  // SBC-3 READ(6): 21-bit LBA; TRANSFER LENGTH 0 means 256 blocks.
  const lba = ((c[1]! & 0x1f) << 16) | c.readUInt16BE(2);
  return readBlocks(lu, req, lba, c[4] === 0 ? 256 : c[4]!, 4);
}

function read10(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  // RDPROTECT ≠ 0 without protection information: INVALID FIELD IN CDB (SBC-3 READ(10)).
  if (c[1]! & 0xe0) return invalidFieldInCdb(1, 7);
  return readBlocks(lu, req, c.readUInt32BE(2), c.readUInt16BE(7), 7);
}

function read12(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  if (c[1]! & 0xe0) return invalidFieldInCdb(1, 7);
  return readBlocks(lu, req, c.readUInt32BE(2), c.readUInt32BE(6), 6);
}

function read16(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  if (c[1]! & 0xe0) return invalidFieldInCdb(1, 7);
  return readBlocks(lu, req, readU64(c, 2), c.readUInt32BE(10), 10);
}

// --- WRITE ---------------------------------------------------------------------------------

function writeBlocks(
  lu: LogicalUnit,
  req: ScsiRequest,
  lba: number,
  blocks: number,
  fua: boolean,
  lenByte: number,
): ScsiResponse | Promise<ScsiResponse> {
  // SBC-3 write protection: DATA PROTECT / WRITE PROTECTED (LU or ACL read-only).
  if (lu.readOnly || req.nexus.readOnly) return writeProtected();
  if (outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  if (blocks === 0) return { status: ScsiStatus.Good };
  if (tooLong(lu, blocks)) return invalidFieldInCdb(lenByte);
  const data = req.dataOut;
  // The transport reports residuals against this (iSCSI EDTL ≠ SCSI transfer length).
  const transferLength = blocks * lu.blockSize;
  if (req.dataOutStream !== undefined) return writeStream(lu, req.dataOutStream, lba, blocks, fua || !lu.writeCache, transferLength);
  const n = usableBytes(data, transferLength, lu.blockSize);
  if (n === PARTIAL_BLOCK) return { ...partialBlock(), transferLength };
  if (n === 0) return { status: ScsiStatus.Good, transferLength };
  const buf = data!.length === n ? data! : data!.subarray(0, n);
  // FUA (SBC-3 WRITE(10)): durable before status. With WCE = 0 every write is.
  return writeFrom(lu, buf, lba * lu.blockSize, fua || !lu.writeCache, transferLength);
}

async function writeFrom(lu: LogicalUnit, buf: Buffer, offset: number, durable: boolean, transferLength: number): Promise<ScsiResponse> {
  // Shared range lock: concurrent writes proceed, but never inside a COMPARE AND WRITE (or other
  // read-modify-write) of an overlapping range. Uncontended, this returns synchronously.
  let release = lu.locks.acquire(offset / lu.blockSize, buf.length / lu.blockSize, false);
  if (typeof release !== 'function') release = await release;
  try {
    await lu.backend.write(buf, offset, durable);
  } catch (err) {
    return writeError(err);
  } finally {
    release();
  }
  return { status: ScsiStatus.Good, transferLength };
}

/**
 * A large write whose data is still arriving: each piece goes to the file as it comes, under a
 * shared range lock held for the whole command; durability (FUA, WCE=0) is one fdatasync at the
 * end, before status (SBC-3 WRITE(10) FUA). Only whole blocks that fit the transfer are written
 * (iSCSI EDTL may differ from the CDB's transfer length, as with `usableBytes`).
 */
async function writeStream(
  lu: LogicalUnit, stream: DataOutStream, lba: number, blocks: number, durable: boolean, transferLength: number,
): Promise<ScsiResponse> {
  const bs = lu.blockSize;
  const limit = Math.min(transferLength, stream.length);
  if (limit % bs !== 0) return { ...partialBlock(), transferLength };
  const base = lba * bs;
  let release = lu.locks.acquire(lba, blocks, false);
  if (typeof release !== 'function') release = await release;
  try {
    let pos = 0;
    for (let pieces = await stream.next(); pieces !== null; pieces = await stream.next()) {
      let bytes = 0;
      for (const b of pieces) bytes += b.length;
      const usable = Math.min(bytes, limit - pos);
      if (usable > 0) await lu.backend.write(usable === bytes ? pieces : leadingBytes(pieces, usable), base + pos, false);
      pos += bytes;
    }
    if (durable) await lu.backend.flush();
  } catch (err) {
    return { ...writeError(err), transferLength };
  } finally {
    release();
  }
  return { status: ScsiStatus.Good, transferLength };
}

/** The first `n` bytes of `bufs`, as views. */
function leadingBytes(bufs: readonly Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (n <= 0) break;
    out.push(b.length <= n ? b : b.subarray(0, n));
    n -= b.length;
  }
  return out;
}

function write6(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  const lba = ((c[1]! & 0x1f) << 16) | c.readUInt16BE(2);
  return writeBlocks(lu, req, lba, c[4] === 0 ? 256 : c[4]!, false, 4);
}

function write10(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  // WRPROTECT ≠ 0 without protection information: INVALID FIELD IN CDB (SBC-3 WRITE(10)).
  if (c[1]! & 0xe0) return invalidFieldInCdb(1, 7);
  return writeBlocks(lu, req, c.readUInt32BE(2), c.readUInt16BE(7), (c[1]! & 0x08) !== 0, 7);
}

function write12(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  if (c[1]! & 0xe0) return invalidFieldInCdb(1, 7);
  return writeBlocks(lu, req, c.readUInt32BE(2), c.readUInt32BE(6), (c[1]! & 0x08) !== 0, 6);
}

function write16(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  if (c[1]! & 0xe0) return invalidFieldInCdb(1, 7);
  return writeBlocks(lu, req, readU64(c, 2), c.readUInt32BE(10), (c[1]! & 0x08) !== 0, 10);
}

// --- VERIFY --------------------------------------------------------------------------------

/** VERIFY(10/12/16), SBC-3. BYTCHK 00b: medium check only; 01b: compare; 11b: compare one block against each. */
function verify(
  lu: LogicalUnit,
  req: ScsiRequest,
  lba: number,
  blocks: number,
  lenByte: number,
): ScsiResponse | Promise<ScsiResponse> {
  const b1 = req.cdb[1]!;
  if (b1 & 0xe0) return invalidFieldInCdb(1, 7); // VRPROTECT
  const bytchk = (b1 >> 1) & 0x03;
  if (bytchk === 2) return invalidFieldInCdb(1, 2);
  if (outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  if (blocks === 0) return good();
  // BYTCHK 0: the range is addressable and the file has no media to scan; GOOD.
  if (bytchk === 0) return good();
  if (tooLong(lu, blocks)) return invalidFieldInCdb(lenByte);
  const bs = lu.blockSize;
  const data = req.dataOut;
  let expected: Buffer;
  let compareBlocks: number;
  if (bytchk === 1) {
    const n = usableBytes(data, blocks * bs, bs);
    if (n === PARTIAL_BLOCK) return partialBlock();
    if (n === 0) return good();
    expected = data!.subarray(0, n);
    compareBlocks = n / bs;
  } else {
    if (!data || data.length < bs) return partialBlock();
    expected = data.subarray(0, bs);
    compareBlocks = blocks;
  }
  return compare(lu, lba, compareBlocks, expected);
}

export async function compare(lu: LogicalUnit, lba: number, blocks: number, expected: Buffer): Promise<ScsiResponse> {
  const bs = lu.blockSize;
  const medium = Buffer.allocUnsafe(blocks * bs);
  try {
    await lu.backend.read(medium, lba * bs);
  } catch {
    return readError();
  }
  const step = expected.length;
  for (let o = 0; o < medium.length; o += step) {
    const chunk = medium.subarray(o, o + step);
    if (!chunk.equals(expected)) {
      let i = 0;
      while (chunk[i] === expected[i]) i++;
      // SBC-3 VERIFY(10): MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION, INFORMATION = offset of
      // the first byte that differs.
      return senseError(SenseKey.MISCOMPARE, Asc.MISCOMPARE_DURING_VERIFY, { info: o + i });
    }
  }
  return good();
}

function verify10(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  return verify(lu, req, c.readUInt32BE(2), c.readUInt16BE(7), 7);
}
function verify12(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  return verify(lu, req, c.readUInt32BE(2), c.readUInt32BE(6), 6);
}
function verify16(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const c = req.cdb;
  return verify(lu, req, readU64(c, 2), c.readUInt32BE(10), 10);
}

// --- capacity, cache, start/stop -------------------------------------------------------------

/**
 * READ CAPACITY(10), SBC-3: last LBA, or FFFFFFFFh when it does not fit (the initiator then
 * uses READ CAPACITY(16)). The PMI bit and LBA field are obsolete in SBC-3 and ignored.
 */
function readCapacity10(lu: LogicalUnit): ScsiResponse {
  const b = Buffer.alloc(8);
  const last = lu.blocks - 1;
  b.writeUInt32BE(last >= 0xffffffff ? 0xffffffff : last, 0);
  b.writeUInt32BE(lu.blockSize, 4);
  return good(b);
}

/** READ CAPACITY(16), SBC-3: 32 bytes, truncated to the ALLOCATION LENGTH. */
function readCapacity16(lu: LogicalUnit, req: ScsiRequest): ScsiResponse {
  const b = Buffer.alloc(32);
  writeU64(b, lu.blocks - 1, 0);
  b.writeUInt32BE(lu.blockSize, 8);
  // [12] P_TYPE/PROT_EN 0; [13] P_I_EXPONENT 0, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT 0;
  // [14..15] LBPME, LBPRZ, LOWEST ALIGNED LBA 0. Thin provisioned: LBPME = 1, and a
  // deallocated block (a hole) reads as zeros: LBPRZ = 1.
  if (lu.thinProvisioned) b[14] = 0x80 | 0x40;
  return good(truncate(b, req.cdb.readUInt32BE(10)));
}

/**
 * SYNCHRONIZE CACHE(10/16), SBC-3. NUMBER OF LOGICAL BLOCKS 0 = through the last
 * block. The whole file is flushed (fdatasync has no range). IMMED is accepted but status is
 * still returned after the flush, so a failure is never hidden behind an early GOOD.
 */
async function syncCache(lu: LogicalUnit, lba: number, blocks: number): Promise<ScsiResponse> {
  if (outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  try {
    await lu.backend.flush();
  } catch (err) {
    return writeError(err);
  }
  return good();
}

function syncCache10(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  return syncCache(lu, c.readUInt32BE(2), c.readUInt16BE(7));
}
function syncCache16(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  return syncCache(lu, readU64(c, 2), c.readUInt32BE(10));
}

/**
 * START STOP UNIT, SBC-3: there is no spindle or medium to move, so every power condition
 * and START/LOEJ combination succeeds. A stop (START = 0, POWER CONDITION 0) without NO_FLUSH
 * writes the cache to the medium first, as the clause requires.
 */
async function startStopUnit(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const b4 = req.cdb[4]!;
  const stop = (b4 & 0xf0) === 0 && (b4 & 0x01) === 0 && (b4 & 0x04) === 0;
  if (stop) {
    try {
      await lu.backend.flush();
    } catch (err) {
      return writeError(err);
    }
  }
  return good();
}

// --- PRE-FETCH, READ DEFECT DATA -------------------------------------------------------------

/**
 * PRE-FETCH(10/16), SBC-3 §5.9/§5.10: the range must be addressable (PREFETCH LENGTH 0 = to the
 * last block). The only cache is the host's page cache, which this device server cannot pin, so
 * it reports GOOD: "the cache does not have sufficient capacity to accept all of the specified
 * logical blocks" (CONDITION MET would promise they are cached).
 */
function prefetch(lu: LogicalUnit, lba: number, blocks: number): ScsiResponse {
  if (lba >= lu.blocks) return lbaOutOfRange();
  if (blocks !== 0 && outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  return good();
}

/**
 * READ DEFECT DATA(10/12), SBC-3 §5.12/§5.13: a file has no primary or grown defects. The lists
 * asked for are reported as present and empty, in the format asked for.
 */
function readDefectData(req: ScsiRequest, twelve: boolean): ScsiResponse {
  const c = req.cdb;
  const flags = (twelve ? c[1]! : c[2]!) & 0x1f; // REQ_PLIST, REQ_GLIST, DEFECT LIST FORMAT
  const alloc = twelve ? c.readUInt32BE(6) : c.readUInt16BE(7);
  const out = Buffer.alloc(twelve ? 8 : 4);
  out[1] = flags; // PLISTV/GLISTV mirror the request; DEFECT LIST LENGTH 0
  return good(truncate(out, alloc));
}

/** START STOP UNIT that starts the unit (POWER CONDITION 0) changes nothing another initiator relies on (SBC-3 Table 13). */
function startStopReservation(cdb: Buffer): 'allowed' | 'write' {
  const b4 = cdb[4] ?? 0;
  return (b4 & 0xf0) === 0 && (b4 & 0x01) !== 0 ? 'allowed' : 'write';
}

// --- table ---------------------------------------------------------------------------------


export const SBC_COMMANDS: readonly CommandDescriptor[] = [
  { name: 'READ(6)', opcode: Op.READ_6, usage: [Op.READ_6, 0x1f, 0xff, 0xff, 0xff, CONTROL_USAGE], reservation: 'read', handler: read6 },
  { name: 'WRITE(6)', opcode: Op.WRITE_6, usage: [Op.WRITE_6, 0x1f, 0xff, 0xff, 0xff, CONTROL_USAGE], reservation: 'write', handler: write6 },
  {
    name: 'START STOP UNIT',
    opcode: Op.START_STOP_UNIT,
    usage: [Op.START_STOP_UNIT, 0x01, 0x00, 0x0f, 0xf7, CONTROL_USAGE],
    reservation: startStopReservation,
    handler: startStopUnit,
  },
  {
    name: 'READ CAPACITY(10)',
    opcode: Op.READ_CAPACITY_10,
    usage: [Op.READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, CONTROL_USAGE],
    reservation: 'allowed',
    handler: readCapacity10,
  },
  { name: 'READ(10)', opcode: Op.READ_10, usage: [Op.READ_10, 0xfa, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE], reservation: 'read', handler: read10 },
  { name: 'WRITE(10)', opcode: Op.WRITE_10, usage: [Op.WRITE_10, 0xfa, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE], reservation: 'write', handler: write10 },
  { name: 'VERIFY(10)', opcode: Op.VERIFY_10, usage: [Op.VERIFY_10, 0xf6, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE], reservation: 'read', handler: verify10 },
  {
    name: 'SYNCHRONIZE CACHE(10)',
    opcode: Op.SYNCHRONIZE_CACHE_10,
    usage: [Op.SYNCHRONIZE_CACHE_10, 0x02, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'write',
    handler: syncCache10,
  },
  { name: 'READ(16)', opcode: Op.READ_16, usage: [Op.READ_16, 0xfa, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', handler: read16 },
  { name: 'WRITE(16)', opcode: Op.WRITE_16, usage: [Op.WRITE_16, 0xfa, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'write', handler: write16 },
  { name: 'VERIFY(16)', opcode: Op.VERIFY_16, usage: [Op.VERIFY_16, 0xf6, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', handler: verify16 },
  {
    name: 'SYNCHRONIZE CACHE(16)',
    opcode: Op.SYNCHRONIZE_CACHE_16,
    usage: [Op.SYNCHRONIZE_CACHE_16, 0x02, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'write',
    handler: syncCache16,
  },
  {
    name: 'READ CAPACITY(16)',
    opcode: Op.SERVICE_ACTION_IN_16,
    serviceAction: Sa.READ_CAPACITY_16,
    usage: [Op.SERVICE_ACTION_IN_16, Sa.READ_CAPACITY_16, 0, 0, 0, 0, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'allowed',
    handler: readCapacity16,
  },
  { name: 'READ(12)', opcode: Op.READ_12, usage: [Op.READ_12, 0xfa, ...FIELD32_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', handler: read12 },
  { name: 'WRITE(12)', opcode: Op.WRITE_12, usage: [Op.WRITE_12, 0xfa, ...FIELD32_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'write', handler: write12 },
  { name: 'VERIFY(12)', opcode: Op.VERIFY_12, usage: [Op.VERIFY_12, 0xf6, ...FIELD32_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', handler: verify12 },
  {
    name: 'PRE-FETCH(10)',
    opcode: Op.PRE_FETCH_10,
    usage: [Op.PRE_FETCH_10, 0x02, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'read',
    handler: (lu, req) => prefetch(lu, req.cdb.readUInt32BE(2), req.cdb.readUInt16BE(7)),
  },
  {
    name: 'PRE-FETCH(16)',
    opcode: Op.PRE_FETCH_16,
    usage: [Op.PRE_FETCH_16, 0x02, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'read',
    handler: (lu, req) => prefetch(lu, readU64(req.cdb, 2), req.cdb.readUInt32BE(10)),
  },
  {
    name: 'READ DEFECT DATA(10)',
    opcode: Op.READ_DEFECT_DATA_10,
    usage: [Op.READ_DEFECT_DATA_10, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'read',
    handler: (_lu, req) => readDefectData(req, false),
  },
  {
    name: 'READ DEFECT DATA(12)',
    opcode: Op.READ_DEFECT_DATA_12,
    usage: [Op.READ_DEFECT_DATA_12, 0x1f, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'read',
    handler: (_lu, req) => readDefectData(req, true),
  },
];
