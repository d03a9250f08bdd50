import { describe, expect, it } from 'vitest';
import type { BlockBackend } from '../../src/backend/block-backend.js';
import { LogicalUnit, MAX_TRANSFER_BYTES } from '../../src/scsi/logical-unit.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
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

function pattern(blocks: number, seed: number, bs = BS): Buffer {
  const b = Buffer.alloc(blocks * bs);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

const read10 = (lba: number, n: number, flags = 0) => cdb([0x28, flags, ...u32(lba), 0, ...u16(n), 0]);
const write10 = (lba: number, n: number, flags = 0) => cdb([0x2a, flags, ...u32(lba), 0, ...u16(n), 0]);
const read16 = (lba: number, n: number, flags = 0) => cdb([0x88, flags, ...u64(lba), ...u32(n), 0, 0]);
const write16 = (lba: number, n: number, flags = 0) => cdb([0x8a, flags, ...u64(lba), ...u32(n), 0, 0]);
const read12 = (lba: number, n: number) => cdb([0xa8, 0, ...u32(lba), ...u32(n), 0, 0]);
const write12 = (lba: number, n: number) => cdb([0xaa, 0, ...u32(lba), ...u32(n), 0, 0]);
const read6 = (lba: number, n: number) => cdb([0x08, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, n, 0]);
const write6 = (lba: number, n: number) => cdb([0x0a, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, n, 0]);

async function ready(blocks = 64, extra: Parameters<typeof makeDevice>[0] = {}) {
  const d = makeDevice({ blocks, ...extra });
  await clearUa(d.dev);
  return d;
}

describe('READ / WRITE', () => {
  it('round-trips data through every CDB size', async () => {
    const { dev, mem } = await ready();
    const cases: [Buffer, Buffer, number][] = [
      [write6(1, 2), read6(1, 2), 2],
      [write10(3, 3), read10(3, 3), 3],
      [write12(10, 4), read12(10, 4), 4],
      [write16(20, 5), read16(20, 5), 5],
    ];
    let seed = 1;
    for (const [w, r, n] of cases) {
      const data = pattern(n, seed++);
      expectGood(await run(dev, w, { dataOut: data }));
      const res = await run(dev, r);
      expectGood(res);
      expect(res.data!.equals(data)).toBe(true);
    }
    expect(mem.data.subarray(BS, 3 * BS).equals(pattern(2, 1))).toBe(true);
  });

  it('reads and writes the last LBA; one past it is LBA OUT OF RANGE', async () => {
    const { dev } = await ready(64);
    expectGood(await run(dev, write10(63, 1), { dataOut: pattern(1, 9) }));
    expectGood(await run(dev, read10(63, 1)));
    expectSense(await run(dev, read10(63, 2)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, read10(64, 1)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, write16(64, 1), { dataOut: pattern(1, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, read12(0xffffffff, 1)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
  });

  it('treats an LBA + length that wraps 64 bits as out of range', async () => {
    const { dev } = await ready(64);
    // LBA 2^64 - 1 with length 2 would wrap to 0 in 64-bit arithmetic.
    const c = cdb([0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...u32(2), 0, 0]);
    expectSense(await run(dev, c), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, read16(2 ** 63, 1)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
  });

  it('zero transfer length is GOOD with no data, but still range checked', async () => {
    const { dev, mem } = await ready(64);
    const r = await run(dev, read10(0, 0));
    expectGood(r);
    expect(r.data).toBeUndefined();
    expectGood(await run(dev, write10(63, 0)));
    expectGood(await run(dev, read16(63, 0)));
    expect(mem.stats.reads + mem.stats.writes).toBe(0);
    // libiscsi: a 0-block read one block past the end is LBA OUT OF RANGE.
    expectSense(await run(dev, read10(64, 0)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, read10(0x80000000, 0)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
  });

  it('READ(6)/WRITE(6) transfer length 0 means 256 blocks', async () => {
    const { dev } = await ready(300);
    const data = pattern(256, 3);
    expectGood(await run(dev, write6(10, 0), { dataOut: data }));
    const r = await run(dev, read6(10, 0));
    expectGood(r);
    expect(r.data!.length).toBe(256 * BS);
    expect(r.data!.equals(data)).toBe(true);
    expectSense(await run(dev, read6(100, 0)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
  });

  it('a transfer above MAXIMUM TRANSFER LENGTH is INVALID FIELD IN CDB pointing at the length', async () => {
    const max = MAX_TRANSFER_BYTES / BS; // beyond READ(10)'s 16-bit length: READ(16) reaches it
    const { dev } = await ready(max * 2);
    expectGood(await run(dev, read16(0, max)));
    const s16 = expectSense(await run(dev, read16(0, max + 1)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s16)).toEqual({ cd: true, byte: 10 });
  });

  it('RDPROTECT/WRPROTECT ≠ 0 is INVALID FIELD IN CDB (byte 1, bit 7)', async () => {
    const { dev } = await ready();
    for (const c of [read10(0, 1, 0x20), read12(0, 1), read16(0, 1, 0x60)]) {
      if (c[0] === 0xa8) c[1] = 0x80;
      const s = expectSense(await run(dev, c), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
      expect(fieldPointer(s)).toEqual({ cd: true, byte: 1, bit: 7 });
    }
    expectSense(await run(dev, write10(0, 1, 0x20), { dataOut: pattern(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });

  it('accepts DPO and FUA; FUA makes the write durable', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, read10(0, 1, 0x18)));
    expectGood(await run(dev, write10(0, 1, 0x10), { dataOut: pattern(1, 0) }));
    expect(mem.stats.durableWrites).toBe(0);
    expectGood(await run(dev, write10(0, 1, 0x08), { dataOut: pattern(1, 0) }));
    expectGood(await run(dev, write16(0, 1, 0x08), { dataOut: pattern(1, 0) }));
    expect(mem.stats.durableWrites).toBe(2);
  });

  it('with the write cache disabled every write is durable', async () => {
    const { dev, mem } = await ready(64, { writeCache: false });
    expectGood(await run(dev, write10(0, 1), { dataOut: pattern(1, 0) }));
    expectGood(await run(dev, write6(0, 1), { dataOut: pattern(1, 0) }));
    expect(mem.stats.durableWrites).toBe(2);
  });

  it('refuses writes on a read-only LU or for a read-only nexus with DATA PROTECT / WRITE PROTECTED', async () => {
    const ro = await ready(64, { readOnly: true });
    expectSense(await run(ro.dev, write10(0, 1), { dataOut: pattern(1, 0) }), KEY.DATA_PROTECT, 0x27, 0x00);
    expectSense(await run(ro.dev, write6(0, 1), { dataOut: pattern(1, 0) }), KEY.DATA_PROTECT, 0x27, 0x00);
    expectGood(await run(ro.dev, read10(0, 1)));
    expectGood(await run(ro.dev, cdb([0x35])));
    expect(ro.mem.stats.writes).toBe(0);

    const { dev, mem } = makeDevice();
    const nx = nexus('reader', true);
    await clearUa(dev, nx);
    expectSense(await run(dev, write16(0, 1), { nx, dataOut: pattern(1, 0) }), KEY.DATA_PROTECT, 0x27, 0x00);
    expectGood(await run(dev, read16(0, 1), { nx }));
    expect(mem.stats.writes).toBe(0);
  });

  it('writes only the whole blocks delivered when EDTL is shorter than the CDB length', async () => {
    const { dev, mem } = await ready();
    mem.data.fill(0x61, 0, 2 * BS);
    // Two blocks in the CDB, one block of data (iSCSI EDTL = 1 block): block 0 written, block 1 untouched.
    expectGood(await run(dev, write10(0, 2), { dataOut: Buffer.alloc(BS, 0x62) }));
    expect(mem.data.subarray(0, BS).every((b) => b === 0x62)).toBe(true);
    expect(mem.data.subarray(BS, 2 * BS).every((b) => b === 0x61)).toBe(true);
    // No data at all: GOOD, nothing written.
    const writes = mem.stats.writes;
    expectGood(await run(dev, write10(0, 1)));
    expect(mem.stats.writes).toBe(writes);
    // A partial block cannot be written.
    expectSense(await run(dev, write10(0, 1), { dataOut: Buffer.alloc(200) }), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
    // More data than the CDB asks for: only the CDB's blocks are written.
    mem.data.fill(0x61, 0, 2 * BS);
    expectGood(await run(dev, write10(0, 1), { dataOut: Buffer.alloc(2 * BS, 0x63) }));
    expect(mem.data.subarray(BS, 2 * BS).every((b) => b === 0x61)).toBe(true);
  });

  it('reads at most the expected data transfer length', async () => {
    const { dev, mem } = await ready();
    const r = await run(dev, read10(0, 4), { dataInLength: 1000 });
    expectGood(r);
    expect(r.data!.length).toBe(1000);
    expect(mem.stats.reads).toBe(1);
  });

  it('maps backend failures to MEDIUM ERROR / DATA PROTECT, never GOOD', async () => {
    const { dev, mem } = await ready();
    mem.failNext('read', 'EIO');
    expectSense(await run(dev, read10(0, 1)), KEY.MEDIUM_ERROR, 0x11, 0x00);
    mem.failNext('write', 'EIO');
    expectSense(await run(dev, write10(0, 1), { dataOut: pattern(1, 0) }), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    mem.failNext('write', 'ENOSPC');
    expectSense(await run(dev, write10(0, 1), { dataOut: pattern(1, 0) }), KEY.DATA_PROTECT, 0x27, 0x07);
    mem.failNext('write', 'EDQUOT');
    expectSense(await run(dev, write10(0, 1), { dataOut: pattern(1, 0) }), KEY.DATA_PROTECT, 0x27, 0x07);
    mem.failNext('flush', 'EIO');
    expectSense(await run(dev, cdb([0x35])), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    // And it recovers.
    expectGood(await run(dev, read10(0, 1)));
  });

  it('turns a backend that throws synchronously into CHECK CONDITION, never a rejection', async () => {
    const broken: BlockBackend = {
      description: 'broken',
      sizeBytes: 64 * BS,
      read: () => {
        throw new Error('sync throw');
      },
      write: () => Promise.resolve(),
      flush: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    const { dev } = makeDevice({ backend: broken });
    await clearUa(dev);
    expectSense(await run(dev, read10(0, 1)), KEY.MEDIUM_ERROR, 0x11, 0x00);
    // A CDB too short for its opcode is refused rather than read past its end.
    expectSense(await run(dev, Buffer.from([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0])), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });
});

describe('READ CAPACITY', () => {
  function hugeDevice(blocks: number) {
    const backend: BlockBackend = {
      description: 'huge',
      sizeBytes: blocks * BS,
      read: async (buf) => void buf.fill(0),
      write: async () => undefined,
      flush: async () => undefined,
      close: async () => undefined,
    };
    const lu = new LogicalUnit({
      lun: 0,
      backend,
      blockSize: BS,
      readOnly: false,
      writeCache: true,
      serial: 'S',
      naa: '6001405abcdef0123456789abcdef012',
      vendor: 'V',
      product: 'P',
      revision: '1',
      targetName: 'iqn.x:y',
    });
    return new ScsiDevice([lu]);
  }

  it('RC10 reports the last LBA and block length', async () => {
    const { dev } = await ready(100);
    const r = await run(dev, cdb([0x25]));
    expectGood(r);
    expect(r.data!.readUInt32BE(0)).toBe(99);
    expect(r.data!.readUInt32BE(4)).toBe(512);
  });

  it('RC10 reports FFFFFFFFh once the last LBA does not fit; RC16 reports it exactly', async () => {
    for (const [blocks, rc10] of [
      [2 ** 32 - 1, 0xfffffffe],
      [2 ** 32, 0xffffffff],
      [2 ** 32 + 5, 0xffffffff],
    ] as const) {
      const dev = hugeDevice(blocks);
      await clearUa(dev);
      const r10 = await run(dev, cdb([0x25]));
      expect(r10.data!.readUInt32BE(0)).toBe(rc10);
      const r16 = await run(dev, cdb([0x9e, 0x10, ...u64(0), ...u32(32), 0, 0]));
      expectGood(r16);
      expect(r16.data!.length).toBe(32);
      expect(r16.data!.readBigUInt64BE(0)).toBe(BigInt(blocks - 1));
      expect(r16.data!.readUInt32BE(8)).toBe(512);
      expect(r16.data![13]).toBe(0); // LBPPBE
      expect(r16.data![14]! & 0x80).toBe(0); // LBPME
      // Reads beyond 2^32 blocks work with READ(16).
      expectGood(await run(dev, read16(blocks - 1, 1)));
      expectSense(await run(dev, read16(blocks, 1)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    }
  });

  it('RC16 honours the allocation length; an unknown SERVICE ACTION IN(16) action is INVALID FIELD IN CDB', async () => {
    const { dev } = await ready();
    const r = await run(dev, cdb([0x9e, 0x10, ...u64(0), ...u32(12), 0, 0]));
    expectGood(r);
    expect(r.data!.length).toBe(12);
    const r0 = await run(dev, cdb([0x9e, 0x10, ...u64(0), ...u32(0), 0, 0]));
    expectGood(r0);
    expect(r0.data!.length).toBe(0);
    const s = expectSense(await run(dev, cdb([0x9e, 0x13])), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 1, bit: 4 });
  });
});

describe('SYNCHRONIZE CACHE / VERIFY / START STOP UNIT', () => {
  it('SYNCHRONIZE CACHE flushes and range checks', async () => {
    const { dev, mem } = await ready(64);
    expectGood(await run(dev, cdb([0x35, 0x02, ...u32(0), 0, ...u16(0), 0])));
    expectGood(await run(dev, cdb([0x91, 0, ...u64(63), ...u32(1), 0, 0])));
    expect(mem.stats.flushes).toBe(2);
    expectSense(await run(dev, cdb([0x35, 0, ...u32(60), 0, ...u16(5), 0])), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, cdb([0x91, 0, ...u64(64), ...u32(0), 0, 0])), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
  });

  it('VERIFY BYTCHK=0 checks the range only; BYTCHK=1 compares and reports MISCOMPARE with the offset', async () => {
    const { dev, mem } = await ready(64);
    const data = pattern(2, 5);
    data.copy(mem.data, 4 * BS);
    expectGood(await run(dev, cdb([0x2f, 0, ...u32(4), 0, ...u16(2), 0]), { dataOut: Buffer.alloc(2 * BS) }));
    expectSense(await run(dev, cdb([0x2f, 0, ...u32(63), 0, ...u16(2), 0])), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectGood(await run(dev, cdb([0x2f, 0x02, ...u32(4), 0, ...u16(2), 0]), { dataOut: data }));
    const bad = Buffer.from(data);
    bad[BS + 17] ^= 0xff;
    const s = expectSense(
      await run(dev, cdb([0x8f, 0x02, ...u64(4), ...u32(2), 0, 0]), { dataOut: bad }),
      KEY.MISCOMPARE,
      0x1d,
      0x00,
    );
    expect(s[0]! & 0x80).toBe(0x80); // VALID
    expect(s.readUInt32BE(3)).toBe(BS + 17);
    // VERIFY(12), BYTCHK=11b: one block compared against each block of the range.
    mem.data.fill(0x5a, 10 * BS, 13 * BS);
    expectGood(await run(dev, cdb([0xaf, 0x06, ...u32(10), ...u32(3), 0, 0]), { dataOut: Buffer.alloc(BS, 0x5a) }));
    expectSense(
      await run(dev, cdb([0xaf, 0x06, ...u32(10), ...u32(4), 0, 0]), { dataOut: Buffer.alloc(BS, 0x5a) }),
      KEY.MISCOMPARE,
      0x1d,
      0x00,
    );
    // BYTCHK=10b is reserved; VRPROTECT unsupported.
    expectSense(await run(dev, cdb([0x2f, 0x04, ...u32(0), 0, ...u16(1), 0])), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, cdb([0x2f, 0x20, ...u32(0), 0, ...u16(1), 0])), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });

  it('START STOP UNIT succeeds', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, cdb([0x1b, 0, 0, 0, 0x01, 0])));
    expectGood(await run(dev, cdb([0x1b, 0x01, 0, 0, 0x00, 0])));
    expectGood(await run(dev, cdb([0x1b, 0, 0, 0, 0x30, 0])));
  });
});
