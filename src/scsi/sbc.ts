/**
 * SBC-3 block commands: READ/WRITE(6/10/12/16), VERIFY(10/12/16), READ CAPACITY(10/16),
 * SYNCHRONIZE CACHE(10/16), START STOP UNIT.
 */
import { Op, Sa, readU64, truncate, writeU64, CONTROL_USAGE, FIELD32_USAGE, FIELD64_USAGE } from './cdb.js';
import { ACTIVE_OR_STANDBY } from './alua.js';
import { PARTIAL_BLOCK, blockCdb, openBlockTransfer, openWrite, outOfRange, partialBlock, usableBytes, writeData, type OpenedWrite } from './block-transfer.js';
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
} from './sense.js';
import { ScsiStatus, type DataOutStream, type ScsiRequest, type ScsiResponse, type TaskHandle } from './types.js';

// --- READ ----------------------------------------------------------------------------------

/** READ(6/10/12/16), SBC-3 §5.11-§5.16. */
function read(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const { lba, blocks, lengthByte } = blockCdb(req.cdb);
  const refused = openBlockTransfer(lu, req.cdb, lba, blocks, lengthByte);
  if (refused !== undefined) return refused;
  if (blocks === 0) return { status: ScsiStatus.Good }; // SBC-3: a zero transfer length is not an error
  const full = blocks * lu.blockSize;
  // Bytes beyond the expected data transfer length would be dropped by the transport anyway;
  // the full length is still reported so the transport can signal the residual overflow.
  const len = Math.min(full, Math.max(req.dataInLength, 0));
  if (len === 0) return { status: ScsiStatus.Good, transferLength: full };
  const offered = req.dataInBuffer;
  const buf = offered !== undefined && offered.length >= len ? offered.subarray(0, len) : Buffer.allocUnsafe(len);
  return readInto(lu, buf, lba * lu.blockSize, full, req.task);
}

async function readInto(lu: LogicalUnit, buf: Buffer, offset: number, transferLength: number, task: TaskHandle | undefined): Promise<ScsiResponse> {
  try {
    await lu.backend.read(buf, offset, task);
  } catch (err) {
    return readError(err);
  }
  return transferLength === buf.length ? { status: ScsiStatus.Good, data: buf } : { status: ScsiStatus.Good, data: buf, transferLength };
}

// --- WRITE ---------------------------------------------------------------------------------

/** WRITE(6/10/12/16), SBC-3 §5.32-§5.35. */
function write(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const w = openWrite(lu, req.cdb);
  if ('status' in w) return w;
  if (req.dataOutStream !== undefined) return writeStream(lu, req.dataOutStream, w, req.task);
  const data = writeData(w, req.dataOut, lu.blockSize);
  if (!Buffer.isBuffer(data)) return data;
  return writeFrom(lu, data, w.lba * lu.blockSize, w.durable, w.transferLength, req.task);
}

async function writeFrom(
  lu: LogicalUnit, buf: Buffer, offset: number, durable: boolean, transferLength: number, task: TaskHandle | undefined,
): Promise<ScsiResponse> {
  // Shared range lock: concurrent writes proceed, but never inside a COMPARE AND WRITE (or other
  // read-modify-write) of an overlapping range. Uncontended, this returns synchronously.
  let release = lu.locks.acquire(offset / lu.blockSize, buf.length / lu.blockSize, false, task);
  if (typeof release !== 'function') release = await release;
  try {
    await lu.backend.write(buf, offset, durable, task);
  } catch (err) {
    return writeError(err);
  } finally {
    release();
  }
  return { status: ScsiStatus.Good, transferLength };
}

/**
 * A large write whose data is still arriving: each piece goes to the file as it comes, under a
 * shared range lock on the blocks of that piece only, so a WRITE whose data is late holds no
 * range that a COMPARE AND WRITE or another write waits for (SBC-3 §5.2 needs only that no write
 * lands inside a COMPARE AND WRITE; a plain WRITE is not atomic). Durability (FUA, WCE=0) is one
 * fdatasync at the end, before status (SBC-3 WRITE(10) FUA). Only whole blocks that fit the
 * transfer are written (iSCSI EDTL may differ from the CDB's transfer length, as with `usableBytes`).
 */
async function writeStream(lu: LogicalUnit, stream: DataOutStream, w: OpenedWrite, task: TaskHandle | undefined): Promise<ScsiResponse> {
  const { lba, durable, transferLength } = w;
  const bs = lu.blockSize;
  const limit = Math.min(transferLength, stream.length);
  if (limit % bs !== 0) return { ...partialBlock(), transferLength };
  const base = lba * bs;
  try {
    let pos = 0;
    for (let pieces = await stream.next(); pieces !== null; pieces = await stream.next()) {
      let bytes = 0;
      for (const b of pieces) bytes += b.length;
      const usable = Math.min(bytes, limit - pos);
      if (usable > 0) {
        const first = Math.floor(pos / bs);
        let release = lu.locks.acquire(lba + first, Math.ceil((pos + usable) / bs) - first, false, task);
        if (typeof release !== 'function') release = await release;
        try {
          await lu.backend.write(usable === bytes ? pieces : leadingBytes(pieces, usable), base + pos, false, task);
        } finally {
          release();
        }
      }
      pos += bytes;
    }
    if (durable) await lu.backend.flush(task);
  } catch (err) {
    return { ...writeError(err), transferLength };
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

// --- VERIFY --------------------------------------------------------------------------------

/** VERIFY(10/12/16), SBC-3 §5.29-§5.31. BYTCHK 00b: medium check only; 01b: compare; 11b: compare one block against each. */
function verify(lu: LogicalUnit, req: ScsiRequest): ScsiResponse | Promise<ScsiResponse> {
  const bytchk = (req.cdb[1]! >> 1) & 0x03;
  if (bytchk === 2) return invalidFieldInCdb(1, 2);
  const { lba, blocks, lengthByte } = blockCdb(req.cdb);
  // BYTCHK 0 transfers nothing, so MAXIMUM TRANSFER LENGTH does not bound it.
  const refused = openBlockTransfer(lu, req.cdb, lba, blocks, lengthByte, bytchk === 0 ? Infinity : lu.maxTransferBlocks);
  if (refused !== undefined) return refused;
  // BYTCHK 0: the range is addressable and the file has no media to scan; GOOD.
  if (blocks === 0 || bytchk === 0) return good();
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
  return compare(lu, lba, compareBlocks, expected, req.task);
}

async function compare(lu: LogicalUnit, lba: number, blocks: number, expected: Buffer, task: TaskHandle | undefined): Promise<ScsiResponse> {
  const bs = lu.blockSize;
  const medium = Buffer.allocUnsafe(blocks * bs);
  try {
    await lu.backend.read(medium, lba * bs, task);
  } catch (err) {
    return readError(err);
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
async function syncCache(lu: LogicalUnit, lba: number, blocks: number, task: TaskHandle | undefined): Promise<ScsiResponse> {
  if (outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  try {
    await lu.backend.flush(task);
  } catch (err) {
    return writeError(err);
  }
  return good();
}

function syncCache10(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  return syncCache(lu, c.readUInt32BE(2), c.readUInt16BE(7), req.task);
}
function syncCache16(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  return syncCache(lu, readU64(c, 2), c.readUInt32BE(10), req.task);
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
      await lu.backend.flush(req.task);
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
  { name: 'READ(6)', opcode: Op.READ_6, usage: [Op.READ_6, 0x1f, 0xff, 0xff, 0xff, CONTROL_USAGE], reservation: 'read', modifies: 'nothing', handler: read },
  { name: 'WRITE(6)', opcode: Op.WRITE_6, usage: [Op.WRITE_6, 0x1f, 0xff, 0xff, 0xff, CONTROL_USAGE], reservation: 'write', modifies: 'medium', streamsDataOut: true, handler: write },
  {
    name: 'START STOP UNIT',
    opcode: Op.START_STOP_UNIT,
    usage: [Op.START_STOP_UNIT, 0x01, 0x00, 0x0f, 0xf7, CONTROL_USAGE],
    reservation: startStopReservation,
    modifies: 'nothing',
    handler: startStopUnit,
  },
  {
    name: 'READ CAPACITY(10)',
    opcode: Op.READ_CAPACITY_10,
    usage: [Op.READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, CONTROL_USAGE],
    reservation: 'allowed',
    modifies: 'nothing',
    alua: ACTIVE_OR_STANDBY,
    handler: readCapacity10,
  },
  { name: 'READ(10)', opcode: Op.READ_10, usage: [Op.READ_10, 0xfa, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE], reservation: 'read', modifies: 'nothing', handler: read },
  { name: 'WRITE(10)', opcode: Op.WRITE_10, usage: [Op.WRITE_10, 0xfa, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE], reservation: 'write', modifies: 'medium', streamsDataOut: true, handler: write },
  { name: 'VERIFY(10)', opcode: Op.VERIFY_10, usage: [Op.VERIFY_10, 0xf6, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE], reservation: 'read', modifies: 'nothing', handler: verify },
  {
    name: 'SYNCHRONIZE CACHE(10)',
    opcode: Op.SYNCHRONIZE_CACHE_10,
    usage: [Op.SYNCHRONIZE_CACHE_10, 0x02, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'nothing',
    handler: syncCache10,
  },
  { name: 'READ(16)', opcode: Op.READ_16, usage: [Op.READ_16, 0xfa, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', modifies: 'nothing', handler: read },
  { name: 'WRITE(16)', opcode: Op.WRITE_16, usage: [Op.WRITE_16, 0xfa, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'write', modifies: 'medium', streamsDataOut: true, handler: write },
  { name: 'VERIFY(16)', opcode: Op.VERIFY_16, usage: [Op.VERIFY_16, 0xf6, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', modifies: 'nothing', handler: verify },
  {
    name: 'SYNCHRONIZE CACHE(16)',
    opcode: Op.SYNCHRONIZE_CACHE_16,
    usage: [Op.SYNCHRONIZE_CACHE_16, 0x02, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'nothing',
    handler: syncCache16,
  },
  {
    name: 'READ CAPACITY(16)',
    opcode: Op.SERVICE_ACTION_IN_16,
    serviceAction: Sa.READ_CAPACITY_16,
    usage: [Op.SERVICE_ACTION_IN_16, Sa.READ_CAPACITY_16, 0, 0, 0, 0, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'allowed',
    modifies: 'nothing',
    alua: ACTIVE_OR_STANDBY,
    handler: readCapacity16,
  },
  { name: 'READ(12)', opcode: Op.READ_12, usage: [Op.READ_12, 0xfa, ...FIELD32_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', modifies: 'nothing', handler: read },
  { name: 'WRITE(12)', opcode: Op.WRITE_12, usage: [Op.WRITE_12, 0xfa, ...FIELD32_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'write', modifies: 'medium', streamsDataOut: true, handler: write },
  { name: 'VERIFY(12)', opcode: Op.VERIFY_12, usage: [Op.VERIFY_12, 0xf6, ...FIELD32_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE], reservation: 'read', modifies: 'nothing', handler: verify },
  {
    name: 'PRE-FETCH(10)',
    opcode: Op.PRE_FETCH_10,
    usage: [Op.PRE_FETCH_10, 0x02, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    handler: (lu, req) => prefetch(lu, req.cdb.readUInt32BE(2), req.cdb.readUInt16BE(7)),
  },
  {
    name: 'PRE-FETCH(16)',
    opcode: Op.PRE_FETCH_16,
    usage: [Op.PRE_FETCH_16, 0x02, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    handler: (lu, req) => prefetch(lu, readU64(req.cdb, 2), req.cdb.readUInt32BE(10)),
  },
  {
    name: 'READ DEFECT DATA(10)',
    opcode: Op.READ_DEFECT_DATA_10,
    usage: [Op.READ_DEFECT_DATA_10, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    handler: (_lu, req) => readDefectData(req, false),
  },
  {
    name: 'READ DEFECT DATA(12)',
    opcode: Op.READ_DEFECT_DATA_12,
    usage: [Op.READ_DEFECT_DATA_12, 0x1f, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    handler: (_lu, req) => readDefectData(req, true),
  },
];
