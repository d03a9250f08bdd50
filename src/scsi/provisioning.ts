/**
 * SBC-3 logical block provisioning (§4.7): UNMAP, WRITE SAME(10/16) (with and without UNMAP),
 * GET LBA STATUS. A thin provisioned logical unit deallocates by punching holes in the backing
 * file (fallocate PUNCH_HOLE | KEEP_SIZE) and reports holes (SEEK_DATA / SEEK_HOLE) as
 * deallocated; a deallocated block reads as zeros (LBPRZ = 1).
 */
import { Op, Sa, readU64, truncate, writeU64, CONTROL_USAGE, FIELD32_USAGE, FIELD64_USAGE } from './cdb.js';
import type { CommandDescriptor } from './command-table.js';
import type { LogicalUnit } from './logical-unit.js';
import { PARTIAL_BLOCK, outOfRange, partialBlock, protectionFieldSet, usableBytes, writeUnderSharedLock } from './block-transfer.js';
import {
  good,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  lbaOutOfRange,
  parameterListLengthError,
  readError,
  writeError,
} from './sense.js';
import type { ScsiRequest, ScsiResponse, TaskHandle } from './types.js';

/** Largest buffer WRITE SAME fills with the repeated block (and writes per call). */
const WRITE_SAME_CHUNK = 1024 * 1024;

/** At most this many LBA status descriptors per GET LBA STATUS (each costs up to two lseeks). */
export const MAX_LBA_STATUS_DESCRIPTORS = 256;

/**
 * Deallocate [lba, lba + blocks) holding the shared range lock; errors become sense. A task
 * aborted while it waits for the lock stops waiting (SAM-5 §7.2), as block-transfer.ts does.
 */
async function deallocate(lu: LogicalUnit, lba: number, blocks: number, task: TaskHandle | undefined): Promise<ScsiResponse | undefined> {
  const release = await lu.locks.acquire(lba, blocks, false, task);
  try {
    await lu.backend.punchHole!(lba * lu.blockSize, blocks * lu.blockSize, !lu.writeCache, task);
  } catch (err) {
    return writeError(err);
  } finally {
    release();
  }
  return undefined;
}

// --- UNMAP (SBC-3 §5.28) -------------------------------------------------------------------------

async function unmap(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  if (c[1]! & 0x01) return invalidFieldInCdb(1, 0); // ANCHOR: ANC_SUP = 0
  const listLen = c.readUInt16BE(7);
  if (listLen === 0) return good(); // not an error: nothing to unmap
  if (listLen < 8) return parameterListLengthError();
  const data = req.dataOut;
  if (data === undefined || data.length < listLen) return partialBlock();
  const p = data.subarray(0, listLen);
  // UNMAP BLOCK DESCRIPTOR DATA LENGTH; an incomplete trailing descriptor is ignored.
  const count = Math.floor(Math.min(p.readUInt16BE(2), listLen - 8) / 16);
  if (count > lu.maxUnmapDescriptors) return invalidFieldInParameterList(2);
  const ranges: [number, number][] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const o = 8 + 16 * i;
    const lba = readU64(p, o);
    const n = p.readUInt32BE(o + 8);
    // Every descriptor is checked before anything is deallocated.
    if (lba + n > lu.blocks || lba > lu.blocks) return lbaOutOfRange();
    total += n;
    if (total > lu.maxUnmapBlocks) return invalidFieldInParameterList(o + 8);
    if (n !== 0) ranges.push([lba, n]);
  }
  for (const [lba, n] of ranges) {
    const r = await deallocate(lu, lba, n, req.task);
    if (r) return r;
  }
  return good();
}

// --- WRITE SAME(10/16) (SBC-3 §5.42, §5.43) --------------------------------------------------------

async function writeSame(lu: LogicalUnit, req: ScsiRequest, lba: number, nblocks: number, ndob: boolean, lenByte: number): Promise<ScsiResponse> {
  const b1 = req.cdb[1]!;
  const protection = protectionFieldSet(req.cdb); // WRPROTECT
  if (protection !== undefined) return protection;
  if (b1 & 0x10) return invalidFieldInCdb(1, 4); // ANCHOR: ANC_SUP = 0
  if (b1 & 0x06) return invalidFieldInCdb(1, b1 & 0x04 ? 2 : 1); // PBDATA / LBDATA (obsolete): not supported
  const unmapBit = (b1 & 0x08) !== 0;
  if (unmapBit && !lu.thinProvisioned) return invalidFieldInCdb(1, 3);
  if (lba >= lu.blocks) return lbaOutOfRange();
  // WSNZ = 1: NUMBER OF LOGICAL BLOCKS 0 ("through the last block") is not supported; one command
  // writes at most MAXIMUM WRITE SAME LENGTH blocks, so its run time stays bounded.
  const blocks = nblocks;
  if (blocks === 0 || blocks > lu.maxWriteSameBlocks) return invalidFieldInCdb(lenByte);
  if (outOfRange(lu, lba, blocks)) return lbaOutOfRange();
  const bs = lu.blockSize;

  let block: Buffer;
  if (ndob) {
    block = Buffer.alloc(bs);
  } else {
    // Exactly one logical block of Data-Out.
    const n = usableBytes(req.dataOut, bs, bs);
    if (n === PARTIAL_BLOCK || n === 0) return { ...partialBlock(), transferLength: bs };
    if (req.dataOut!.length > bs) return { ...invalidFieldInCdb(lenByte), transferLength: bs };
    block = req.dataOut!.subarray(0, bs);
  }
  const transferLength = ndob ? 0 : bs;

  if (unmapBit) {
    // UNMAP = 1: deallocate; with LBPRZ = 1 the blocks then read as zeros whatever the Data-Out
    // block held (what SBC-3 and the initiators using WRITE SAME for discard expect).
    const r = await deallocate(lu, lba, blocks, req.task);
    return r ? { ...r, transferLength } : { ...good(), transferLength };
  }

  const per = Math.max(1, Math.floor(WRITE_SAME_CHUNK / bs));
  const chunkBlocks = Math.min(per, blocks);
  const chunk = Buffer.allocUnsafe(chunkBlocks * bs);
  for (let o = 0; o < chunk.length; o += bs) block.copy(chunk, o);
  return writeUnderSharedLock(lu, lba, blocks, !lu.writeCache, transferLength, async () => {
    for (let done = 0; done < blocks; ) {
      const n = Math.min(chunkBlocks, blocks - done);
      await lu.backend.write(n === chunkBlocks ? chunk : chunk.subarray(0, n * bs), (lba + done) * bs, false, req.task);
      done += n;
    }
  }, req.task);
}

function writeSame10(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  return writeSame(lu, req, c.readUInt32BE(2), c.readUInt16BE(7), false, 7);
}

function writeSame16(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  return writeSame(lu, req, readU64(c, 2), c.readUInt32BE(10), (c[1]! & 0x01) !== 0, 10);
}

// --- GET LBA STATUS (SBC-3 §5.6) -------------------------------------------------------------------

async function getLbaStatus(lu: LogicalUnit, req: ScsiRequest): Promise<ScsiResponse> {
  const c = req.cdb;
  const start = readU64(c, 2);
  const alloc = c.readUInt32BE(10);
  if (start >= lu.blocks) return lbaOutOfRange();
  const bs = lu.blockSize;
  const room = alloc >= 24 ? Math.floor((alloc - 8) / 16) : 1;
  const want = Math.max(1, Math.min(room, MAX_LBA_STATUS_DESCRIPTORS));
  const descs: [number, number, number][] = [];
  const map = lu.thinProvisioned ? lu.backend.mapStatus : undefined;
  let lba = start;
  try {
    while (descs.length < want && lba < lu.blocks) {
      let mapped = true;
      let end = lu.blocks;
      if (map !== undefined) {
        const ext = await map.call(lu.backend, lba * bs, (lu.blocks - lba) * bs, req.task);
        const stop = lba * bs + ext.length;
        // A block is deallocated only if all of it is a hole: holes round inwards, data outwards.
        mapped = ext.mapped;
        end = Math.min(lu.blocks, mapped ? Math.ceil(stop / bs) : Math.floor(stop / bs));
        if (end <= lba) {
          mapped = true;
          end = lba + 1;
        }
      }
      const n = Math.min(end - lba, 0xffffffff);
      const last = descs[descs.length - 1];
      if (last !== undefined && last[2] === (mapped ? 0 : 1) && last[0] + last[1] === lba && last[1] + n <= 0xffffffff) last[1] += n;
      else descs.push([lba, n, mapped ? 0 : 1]);
      lba += n;
    }
  } catch (err) {
    return readError(err);
  }
  const out = Buffer.alloc(8 + 16 * descs.length);
  out.writeUInt32BE(4 + 16 * descs.length, 0); // PARAMETER DATA LENGTH: bytes after this field
  descs.forEach(([l, n, status], i) => {
    const o = 8 + 16 * i;
    writeU64(out, l, o);
    out.writeUInt32BE(n, o + 8);
    out[o + 12] = status; // PROVISIONING STATUS: 0 mapped, 1 deallocated
  });
  return good(truncate(out, alloc));
}

// --- table ---------------------------------------------------------------------------------------

export const PROVISIONING_COMMANDS: readonly CommandDescriptor[] = [
  {
    name: 'WRITE SAME(10)',
    opcode: Op.WRITE_SAME_10,
    usage: [Op.WRITE_SAME_10, 0xfe, ...FIELD32_USAGE, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'medium',
    handler: writeSame10,
  },
  {
    name: 'UNMAP',
    opcode: Op.UNMAP,
    usage: [Op.UNMAP, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, CONTROL_USAGE],
    reservation: 'write',
    available: (lu) => lu.thinProvisioned,
    modifies: 'medium',
    handler: unmap,
  },
  {
    name: 'WRITE SAME(16)',
    opcode: Op.WRITE_SAME_16,
    usage: [Op.WRITE_SAME_16, 0xff, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'write',
    modifies: 'medium',
    handler: writeSame16,
  },
  {
    name: 'GET LBA STATUS',
    opcode: Op.SERVICE_ACTION_IN_16,
    serviceAction: Sa.GET_LBA_STATUS,
    usage: [Op.SERVICE_ACTION_IN_16, Sa.GET_LBA_STATUS, ...FIELD64_USAGE, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    handler: getLbaStatus,
  },
];
