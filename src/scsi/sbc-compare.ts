/**
 * SBC-3 commands that read the medium as part of a write: COMPARE AND WRITE (§5.2), ORWRITE(16)
 * (§5.8), WRITE AND VERIFY(10/12/16) (§5.37-§5.39). Each holds the exclusive range lock over its
 * blocks, so no other write (plain writes take the shared lock) lands between its read and its
 * write: COMPARE AND WRITE is atomic against every other write to the LU, as VMware's ATS locking
 * requires.
 */
import { Op, readU64, CONTROL_USAGE, FIELD32_USAGE, FIELD64_USAGE } from './cdb.js';
import type { CommandDescriptor } from './command-table.js';
import type { LogicalUnit } from './logical-unit.js';
import { openBlockTransfer, openWrite, partialBlock, writeData } from './block-transfer.js';
import {
  Asc,
  SenseKey,
  good,
  invalidFieldInCdb,
  readError,
  senseError,
  writeError,
} from './sense.js';
import { ScsiStatus, type ScsiRequest, type ScsiResponse, type TaskHandle } from './types.js';

/** Index of the first differing byte, or -1 when equal. */
function firstDifference(a: Buffer, b: Buffer): number {
  if (a.equals(b)) return -1;
  let i = 0;
  while (a[i] === b[i]) i++;
  return i;
}

/** MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION, INFORMATION = offset of the first differing byte. */
function miscompare(offset: number): ScsiResponse {
  return senseError(SenseKey.MISCOMPARE, Asc.MISCOMPARE_DURING_VERIFY, { info: offset });
}

/**
 * Under the exclusive range lock over `length` bytes at `lba`: read the medium, let `decide` turn
 * it into the bytes to write (or a response that ends the command with nothing written), write
 * them. No other write can land between the read and the write.
 */
async function readModifyWrite(
  lu: LogicalUnit, lba: number, length: number, durable: boolean, transferLength: number, task: TaskHandle | undefined,
  decide: (medium: Buffer) => Buffer | ScsiResponse,
): Promise<ScsiResponse> {
  const bs = lu.blockSize;
  const release = await lu.locks.acquire(lba, length / bs, true, task);
  try {
    const medium = Buffer.allocUnsafe(length);
    try {
      await lu.backend.read(medium, lba * bs, task);
    } catch (err) {
      return { ...readError(err), transferLength };
    }
    const out = decide(medium);
    if (!Buffer.isBuffer(out)) return out;
    try {
      await lu.backend.write(out, lba * bs, durable, task);
    } catch (err) {
      return { ...writeError(err), transferLength };
    }
  } finally {
    release();
  }
  return { status: ScsiStatus.Good, transferLength };
}

// --- COMPARE AND WRITE ---------------------------------------------------------------------------

/**
 * COMPARE AND WRITE, SBC-3 §5.2: the Data-Out buffer holds NUMBER OF LOGICAL BLOCKS of verify
 * data followed as many of write data. Under the exclusive range lock: read, compare, and only on
 * a full match write. A miscompare leaves the medium untouched and reports the offset of the first
 * differing byte.
 */
async function compareAndWrite(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  const lba = readU64(c, 2);
  const blocks = c[13]!;
  const bs = lu.blockSize;
  const transferLength = 2 * blocks * bs;
  const refused = openBlockTransfer(lu, c, lba, blocks, 13, lu.maxCompareWriteBlocks);
  if (refused !== undefined) return refused;
  const data = req.dataOut;
  const sent = data === undefined ? 0 : data.length;
  // The Data-Out buffer must be exactly the verify and write data: a partial transfer cannot be
  // compared and written atomically, and data beyond NUMBER OF LOGICAL BLOCKS (e.g. a count that
  // did not fit the one-byte field) means the CDB does not describe what the initiator meant.
  if (sent !== transferLength) {
    return { ...(sent > transferLength ? invalidFieldInCdb(13) : partialBlock()), transferLength };
  }
  if (blocks === 0) return good(); // SBC-3: zero blocks is not an error; nothing is transferred
  const verifyData = data!.subarray(0, blocks * bs);
  const writeData = data!.subarray(blocks * bs);
  const durable = (c[1]! & 0x08) !== 0 || !lu.writeCache;

  return readModifyWrite(lu, lba, blocks * bs, durable, transferLength, req.task, (medium) => {
    const at = firstDifference(medium, verifyData);
    return at >= 0 ? { ...miscompare(at), transferLength } : writeData;
  });
}

// --- ORWRITE(16) ----------------------------------------------------------------------------------

/** ORWRITE(16), SBC-3 §5.8 (BMOP 000b): medium := medium OR Data-Out, under the exclusive lock. */
async function orwrite16(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const w = openWrite(lu, req.cdb);
  if ('status' in w) return w;
  const data = writeData(w, req.dataOut, lu.blockSize);
  if (!Buffer.isBuffer(data)) return data;
  const n = data.length;

  return readModifyWrite(lu, w.lba, n, w.durable, w.transferLength, req.task, (medium) => {
    for (let i = 0; i < n; i++) medium[i]! |= data[i]!;
    return medium;
  });
}

// --- WRITE AND VERIFY(10/12/16) --------------------------------------------------------------------

/**
 * WRITE AND VERIFY, SBC-3 §5.37: the data is written to stable storage (the verify is meaningless
 * against a volatile cache), then read back from the medium; with BYTCHK 01b it is also compared
 * with the Data-Out buffer (MISCOMPARE on a difference). BYTCHK 10b/11b are not defined for this
 * command: INVALID FIELD IN CDB.
 */
async function writeAndVerify(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const bytchk = (req.cdb[1]! >> 1) & 0x03;
  if (bytchk > 1) return invalidFieldInCdb(1, 2);
  const w = openWrite(lu, req.cdb);
  if ('status' in w) return w;
  const data = writeData(w, req.dataOut, lu.blockSize);
  if (!Buffer.isBuffer(data)) return data;
  const { lba, transferLength } = w;
  const bs = lu.blockSize;
  const n = data.length;

  const release = await lu.locks.acquire(lba, n / bs, true, req.task);
  try {
    try {
      await lu.backend.write(data, lba * bs, true, req.task);
    } catch (err) {
      return { ...writeError(err), transferLength };
    }
    const medium = Buffer.allocUnsafe(n);
    try {
      await lu.backend.read(medium, lba * bs, req.task);
    } catch (err) {
      return { ...readError(err), transferLength };
    }
    if (bytchk === 1) {
      const at = firstDifference(medium, data);
      if (at >= 0) return { ...miscompare(at), transferLength };
    }
  } finally {
    release();
  }
  return { status: ScsiStatus.Good, transferLength };
}

// --- table ---------------------------------------------------------------------------------------

export const COMPARE_COMMANDS: readonly CommandDescriptor[] = [
  {
    name: 'WRITE AND VERIFY(10)',
    opcode: Op.WRITE_AND_VERIFY_10,
    usage: [Op.WRITE_AND_VERIFY_10, 0xf6, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'medium',
    handler: writeAndVerify,
  },
  {
    name: 'WRITE AND VERIFY(16)',
    opcode: Op.WRITE_AND_VERIFY_16,
    usage: [Op.WRITE_AND_VERIFY_16, 0xf6, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'medium',
    handler: writeAndVerify,
  },
  {
    name: 'COMPARE AND WRITE',
    opcode: Op.COMPARE_AND_WRITE,
    usage: [Op.COMPARE_AND_WRITE, 0xf8, ...FIELD64_USAGE, 0, 0, 0, 0xff, 0, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'medium',
    handler: compareAndWrite,
  },
  {
    name: 'ORWRITE(16)',
    opcode: Op.ORWRITE_16,
    usage: [Op.ORWRITE_16, 0xf8, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'medium',
    handler: orwrite16,
  },
  {
    name: 'WRITE AND VERIFY(12)',
    opcode: Op.WRITE_AND_VERIFY_12,
    usage: [Op.WRITE_AND_VERIFY_12, 0xf6, ...FIELD32_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'medium',
    handler: writeAndVerify,
  },
];
