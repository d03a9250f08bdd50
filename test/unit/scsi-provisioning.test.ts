import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import { MAX_WRITE_SAME_BYTES, MAX_UNMAP_DESCRIPTORS, MAX_UNMAP_LBA_COUNT } from '../../src/scsi/logical-unit.js';
import {
  KEY,
  cdb,
  clearUa,
  expectGood,
  expectSense,
  fieldPointer,
  makeDevice,
  nexus,
  run,
  u16,
  u32,
  u64,
} from './scsi-helpers.js';

const BS = 512;
/** 4 KiB allocation units = 8 blocks of 512 bytes. */
const UNIT = 8;

function fill(blocks: number, byte: number): Buffer {
  return Buffer.alloc(blocks * BS, byte);
}

async function ready(blocks = 256, extra: Parameters<typeof makeDevice>[0] = {}) {
  const d = makeDevice({ blocks, ...extra });
  await clearUa(d.dev);
  return d;
}

const write10 = (lba: number, n: number) => cdb([0x2a, 0, ...u32(lba), 0, ...u16(n), 0]);
const read10 = (lba: number, n: number) => cdb([0x28, 0, ...u32(lba), 0, ...u16(n), 0]);
const unmapCdb = (len: number, anchor = 0) => cdb([0x42, anchor, 0, 0, 0, 0, 0, ...u16(len), 0]);
const ws10 = (lba: number, n: number, flags = 0) => cdb([0x41, flags, ...u32(lba), 0, ...u16(n), 0]);
const ws16 = (lba: number, n: number, flags = 0) => cdb([0x93, flags, ...u64(lba), ...u32(n), 0, 0]);
const lbaStatus = (lba: number, alloc = 4096) => cdb([0x9e, 0x12, ...u64(lba), ...u32(alloc), 0, 0]);

/** UNMAP parameter list with the given descriptors. */
function unmapList(descs: [number, number][], bdLen = descs.length * 16): Buffer {
  const b = Buffer.alloc(8 + descs.length * 16);
  b.writeUInt16BE(6 + bdLen, 0);
  b.writeUInt16BE(bdLen, 2);
  descs.forEach(([lba, n], i) => {
    Buffer.from(u64(lba)).copy(b, 8 + 16 * i);
    b.writeUInt32BE(n, 16 + 16 * i);
  });
  return b;
}

async function unmap(dev: Parameters<typeof run>[0], descs: [number, number][]) {
  const list = unmapList(descs);
  return run(dev, unmapCdb(list.length), { dataOut: list });
}

/** GET LBA STATUS descriptors: [lba, blocks, status]. */
function parseStatus(d: Buffer): [number, number, number][] {
  const n = (d.readUInt32BE(0) - 4) / 16;
  const out: [number, number, number][] = [];
  for (let i = 0; i < n && 8 + 16 * i + 16 <= d.length; i++) {
    const o = 8 + 16 * i;
    out.push([d.readUInt32BE(o) * 2 ** 32 + d.readUInt32BE(o + 4), d.readUInt32BE(o + 8), d[o + 12]! & 0x0f]);
  }
  return out;
}

describe('READ CAPACITY(16) provisioning bits', () => {
  it('reports LBPME and LBPRZ on a thin provisioned LU, neither without hole punching', async () => {
    const { dev } = await ready();
    const r = await run(dev, cdb([0x9e, 0x10, ...u64(0), ...u32(32), 0, 0]));
    expect(r.data![14]! & 0xc0).toBe(0xc0);
    const mem = new MemoryBackend(64 * BS);
    const plain = { description: 'plain', sizeBytes: mem.sizeBytes, read: mem.read.bind(mem), write: mem.write.bind(mem), flush: mem.flush.bind(mem), close: mem.close.bind(mem) };
    const d2 = makeDevice({ backend: plain });
    await clearUa(d2.dev);
    const r2 = await run(d2.dev, cdb([0x9e, 0x10, ...u64(0), ...u32(32), 0, 0]));
    expect(r2.data![14]! & 0xc0).toBe(0);
    // UNMAP does not exist there; WRITE SAME with UNMAP is an invalid field.
    expectSense(await run(d2.dev, unmapCdb(0)), KEY.ILLEGAL_REQUEST, 0x20, 0x00);
    expectSense(await run(d2.dev, ws10(0, 1, 0x08), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });
});

describe('UNMAP', () => {
  it('deallocates whole allocation units and zeroes the rest; reads return zeros', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, write10(0, 64), { dataOut: fill(64, 0xaa) }));
    expect(mem.allocatedBytes()).toBe(64 * BS);
    // Blocks 4..27: units 1 and 2 (blocks 8..23) are released, blocks 4..7 and 24..27 only zeroed.
    expectGood(await unmap(dev, [[4, 24]]));
    expect(mem.allocatedBytes()).toBe(64 * BS - 2 * UNIT * BS);
    const r = await run(dev, read10(0, 32));
    expect(r.data!.subarray(0, 4 * BS).every((b) => b === 0xaa)).toBe(true);
    expect(r.data!.subarray(4 * BS, 28 * BS).every((b) => b === 0)).toBe(true);
    expect(r.data!.subarray(28 * BS).every((b) => b === 0xaa)).toBe(true);
  });

  it('a zero PARAMETER LIST LENGTH and zero-length descriptors (even at the capacity) are GOOD no-ops', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, unmapCdb(0)));
    expectGood(await unmap(dev, [[0, 0], [5, 0], [256, 0]]));
    expectGood(await unmap(dev, []));
    expect(mem.stats.punches).toBe(0);
  });

  it('checks every descriptor before deallocating anything', async () => {
    const { dev, mem } = await ready();
    expectSense(await unmap(dev, [[0, 8], [250, 7]]), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await unmap(dev, [[257, 0]]), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await unmap(dev, [[2 ** 53, 1]]), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expect(mem.stats.punches).toBe(0);
  });

  it('enforces the Block Limits: descriptor count and LBA count', async () => {
    const blocks = MAX_UNMAP_LBA_COUNT + 16;
    const { dev, mem } = makeDevice({ blocks, backend: new MemoryBackend(blocks * BS) });
    await clearUa(dev);
    const many = Array.from({ length: MAX_UNMAP_DESCRIPTORS + 1 }, (_, i) => [i, 1] as [number, number]);
    const s = expectSense(await unmap(dev, many), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: false, byte: 2 });
    expectSense(await unmap(dev, [[0, MAX_UNMAP_LBA_COUNT], [MAX_UNMAP_LBA_COUNT, 1]]), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    expect(mem.stats.punches).toBe(0);
    expectGood(await unmap(dev, [[0, MAX_UNMAP_LBA_COUNT]]));
  });

  it('short parameter lists, ANCHOR and write protection are refused', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, unmapCdb(6), { dataOut: Buffer.alloc(6) }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
    expectSense(await run(dev, unmapCdb(24), { dataOut: Buffer.alloc(8) }), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
    const list = unmapList([[0, 8]]);
    const s = expectSense(await run(dev, unmapCdb(list.length, 1), { dataOut: list }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 1, bit: 0 });
    await clearUa(dev, nexus('ro', true));
    expectSense(await run(dev, unmapCdb(list.length), { dataOut: list, nx: nexus('ro', true) }), KEY.DATA_PROTECT, 0x27, 0x00);
  });

  it('an incomplete trailing descriptor is ignored', async () => {
    const { dev, mem } = await ready();
    const list = unmapList([[0, 8], [8, 8]], 24);
    expectGood(await run(dev, unmapCdb(list.length), { dataOut: list }));
    expect(mem.stats.punches).toBe(1);
  });

  it('a failed hole punch is never GOOD', async () => {
    const { dev, mem } = await ready();
    mem.failNext('punch', 'EIO');
    expectSense(await unmap(dev, [[0, 8]]), KEY.MEDIUM_ERROR, 0x0c, 0x00);
  });

  it('with the write cache off the deallocation is durable', async () => {
    const { dev, mem } = await ready(256, { writeCache: false });
    const before = mem.stats.flushes;
    expectGood(await unmap(dev, [[0, 8]]));
    expect(mem.stats.flushes).toBe(before + 1);
  });
});

describe('WRITE SAME', () => {
  it('(10) and (16) replicate one block over the range', async () => {
    const { dev } = await ready();
    const block = Buffer.alloc(BS);
    for (let i = 0; i < BS; i++) block[i] = i & 0xff;
    const r = await run(dev, ws10(3, 5), { dataOut: block });
    expectGood(r);
    expect(r.transferLength).toBe(BS);
    expectGood(await run(dev, ws16(250, 6), { dataOut: Buffer.alloc(BS, 0x33) }));
    const d = (await run(dev, read10(0, 256))).data!;
    for (let b = 3; b < 8; b++) expect(d.subarray(b * BS, (b + 1) * BS).equals(block)).toBe(true);
    expect(d.subarray(0, 3 * BS).every((x) => x === 0)).toBe(true);
    expect(d.subarray(250 * BS).every((x) => x === 0x33)).toBe(true);
  });

  it('writes ranges larger than one internal chunk', async () => {
    const blocks = 3000; // > 1 MiB / 512
    const { dev, mem } = await ready(4096);
    expectGood(await run(dev, ws16(7, blocks), { dataOut: Buffer.alloc(BS, 0x5a) }));
    expect(mem.data.subarray(7 * BS, (7 + blocks) * BS).every((x) => x === 0x5a)).toBe(true);
    expect(mem.data[(7 + blocks) * BS]).toBe(0);
  });

  it('UNMAP = 1 deallocates, whatever the Data-Out block holds (LBPRZ: reads zeros)', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, write10(0, 32), { dataOut: fill(32, 0xff) }));
    expectGood(await run(dev, ws10(8, 16, 0x08), { dataOut: fill(1, 0xff) }));
    expect(mem.allocatedBytes()).toBe(16 * BS);
    const d = (await run(dev, read10(8, 16))).data!;
    expect(d.every((x) => x === 0)).toBe(true);
  });

  it('(16) NDOB = 1 needs no Data-Out: zeros, or a deallocation with UNMAP', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, write10(0, 32), { dataOut: fill(32, 0xff) }));
    const r = await run(dev, ws16(0, 8, 0x01));
    expectGood(r);
    expect(mem.data.subarray(0, 8 * BS).every((x) => x === 0)).toBe(true);
    expect(mem.allocatedBytes()).toBe(32 * BS); // written, still mapped
    expectGood(await run(dev, ws16(8, 8, 0x09)));
    expect(mem.allocatedBytes()).toBe(24 * BS);
  });

  it('WSNZ: NUMBER OF LOGICAL BLOCKS 0, and more than MAXIMUM WRITE SAME LENGTH, are INVALID FIELD IN CDB', async () => {
    const max = MAX_WRITE_SAME_BYTES / BS;
    const { dev } = await ready(max * 2);
    const s = expectSense(await run(dev, ws10(0, 0), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 7 });
    const s16 = expectSense(await run(dev, ws16(0, max + 1), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s16)).toEqual({ cd: true, byte: 10 });
    expectGood(await run(dev, ws16(0, max, 0x08), { dataOut: fill(1, 0) }));
  });

  it('range checks come first: past the end is LBA OUT OF RANGE even with 0 blocks', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, ws10(257, 0), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, ws10(0xffffffff, 0), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, ws16(250, 7), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, ws16(2 ** 63, 1), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
  });

  it('refuses bad flags, the wrong Data-Out size and write-protected LUs', async () => {
    const { dev, mem } = await ready();
    const one = fill(1, 1);
    expect(fieldPointer(expectSense(await run(dev, ws10(0, 1, 0x20), { dataOut: one }), KEY.ILLEGAL_REQUEST, 0x24, 0))).toEqual({ cd: true, byte: 1, bit: 7 });
    expect(fieldPointer(expectSense(await run(dev, ws10(0, 1, 0x10), { dataOut: one }), KEY.ILLEGAL_REQUEST, 0x24, 0))).toEqual({ cd: true, byte: 1, bit: 4 });
    expect(fieldPointer(expectSense(await run(dev, ws10(0, 1, 0x18), { dataOut: one }), KEY.ILLEGAL_REQUEST, 0x24, 0))).toEqual({ cd: true, byte: 1, bit: 4 });
    expectSense(await run(dev, ws10(0, 1, 0x04), { dataOut: one }), KEY.ILLEGAL_REQUEST, 0x24, 0); // PBDATA
    expectSense(await run(dev, ws10(0, 1, 0x02), { dataOut: one }), KEY.ILLEGAL_REQUEST, 0x24, 0); // LBDATA
    expectSense(await run(dev, ws10(0, 1), { dataOut: Buffer.alloc(BS / 2) }), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
    expectSense(await run(dev, ws10(0, 1)), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
    expectSense(await run(dev, ws10(0, 1, 0x08), { dataOut: fill(2, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0);
    await clearUa(dev, nexus('ro', true));
    expectSense(await run(dev, ws16(0, 1), { dataOut: one, nx: nexus('ro', true) }), KEY.DATA_PROTECT, 0x27, 0);
    expect(mem.stats.writes + mem.stats.punches).toBe(0);
  });

  it('a failed write is never GOOD; with the write cache off the range is flushed', async () => {
    const { dev, mem } = await ready(256, { writeCache: false });
    const f = mem.stats.flushes;
    expectGood(await run(dev, ws10(0, 4), { dataOut: fill(1, 9) }));
    expect(mem.stats.flushes).toBe(f + 1);
    mem.failNext('write', 'ENOSPC');
    expectSense(await run(dev, ws10(0, 4), { dataOut: fill(1, 9) }), KEY.DATA_PROTECT, 0x27, 0x07);
  });
});

describe('GET LBA STATUS', () => {
  it('reports mapped and deallocated extents from the start LBA', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, write10(16, 16), { dataOut: fill(16, 1) }));
    const r = await run(dev, lbaStatus(0));
    expectGood(r);
    expect(parseStatus(r.data!)).toEqual([
      [0, 16, 1],
      [16, 16, 0],
      [32, 224, 1],
    ]);
    // Starting inside an extent: the first descriptor begins at the starting LBA.
    expect(parseStatus((await run(dev, lbaStatus(20))).data!)[0]).toEqual([20, 12, 0]);
    expect(parseStatus((await run(dev, lbaStatus(255))).data!)).toEqual([[255, 1, 1]]);
  });

  it('a partially punched allocation unit stays mapped', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, write10(0, 32), { dataOut: fill(32, 1) }));
    expectGood(await unmap(dev, [[3, 1]]));
    expect(parseStatus((await run(dev, lbaStatus(0))).data!)[0]).toEqual([0, 32, 0]);
    expectGood(await unmap(dev, [[8, 8]]));
    expect(parseStatus((await run(dev, lbaStatus(0))).data!).slice(0, 3)).toEqual([
      [0, 8, 0],
      [8, 8, 1],
      [16, 16, 0],
    ]);
  });

  it('the STARTING LBA past the last block is LBA OUT OF RANGE', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, lbaStatus(256)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, lbaStatus(2 ** 60)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
  });

  it('honours the allocation length (header always complete at 8+ bytes, truncated below)', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, write10(16, 16), { dataOut: fill(16, 1) }));
    const r = await run(dev, lbaStatus(0, 24));
    expect(r.data!.length).toBe(24);
    expect(r.data!.readUInt32BE(0)).toBe(20); // one descriptor fitted
    const r4 = await run(dev, lbaStatus(0, 4));
    expect(r4.data!.length).toBe(4);
    const r0 = await run(dev, lbaStatus(0, 0));
    expectGood(r0);
    expect(r0.data!.length).toBe(0);
  });

  it('a backend failure is a MEDIUM ERROR', async () => {
    const { dev, mem } = await ready();
    mem.failNext('read', 'EIO');
    expectSense(await run(dev, lbaStatus(0)), KEY.MEDIUM_ERROR, 0x11, 0x00);
  });
});
