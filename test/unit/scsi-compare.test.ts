import { describe, expect, it } from 'vitest';
import type { BlockBackend } from '../../src/backend/block-backend.js';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import { MAX_COMPARE_AND_WRITE_BLOCKS, MAX_TRANSFER_BYTES } from '../../src/scsi/logical-unit.js';
import { RangeLock } from '../../src/scsi/range-lock.js';
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

function fill(blocks: number, byte: number): Buffer {
  return Buffer.alloc(blocks * BS, byte);
}

async function ready(blocks = 64, extra: Parameters<typeof makeDevice>[0] = {}) {
  const d = makeDevice({ blocks, ...extra });
  await clearUa(d.dev);
  return d;
}

const caw = (lba: number, n: number, flags = 0) => cdb([0x89, flags, ...u64(lba), 0, 0, 0, n, 0, 0]);
const orwrite = (lba: number, n: number, flags = 0) => cdb([0x8b, flags, ...u64(lba), ...u32(n), 0, 0]);
const wv10 = (lba: number, n: number, flags = 0) => cdb([0x2e, flags, ...u32(lba), 0, ...u16(n), 0]);
const wv12 = (lba: number, n: number, flags = 0) => cdb([0xae, flags, ...u32(lba), ...u32(n), 0, 0]);
const wv16 = (lba: number, n: number, flags = 0) => cdb([0x8e, flags, ...u64(lba), ...u32(n), 0, 0]);
const write10 = (lba: number, n: number) => cdb([0x2a, 0, ...u32(lba), 0, ...u16(n), 0]);

/** A backend whose reads can be held until released, to interleave commands deterministically. */
class GatedBackend implements BlockBackend {
  readonly description = 'gated';
  readonly sizeBytes: number;
  readonly allocationUnit: number;
  gate: Promise<void> | undefined;
  readonly order: string[] = [];
  constructor(readonly mem: MemoryBackend) {
    this.sizeBytes = mem.sizeBytes;
    this.allocationUnit = mem.allocationUnit;
  }
  async read(buf: Buffer, offset: number): Promise<void> {
    this.order.push(`read@${offset / BS}`);
    if (this.gate) await this.gate;
    return this.mem.read(buf, offset);
  }
  async write(buf: Buffer, offset: number, durable: boolean): Promise<void> {
    this.order.push(`write@${offset / BS}`);
    return this.mem.write(buf, offset, durable);
  }
  flush(): Promise<void> {
    return this.mem.flush();
  }
  close(): Promise<void> {
    return this.mem.close();
  }
}

describe('COMPARE AND WRITE', () => {
  it('writes when the medium matches the verify data', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, write10(4, 2), { dataOut: fill(2, 0x41) }));
    const r = await run(dev, caw(4, 2), { dataOut: Buffer.concat([fill(2, 0x41), fill(2, 0x42)]) });
    expectGood(r);
    expect(r.transferLength).toBe(4 * BS);
    expect(mem.data.subarray(4 * BS, 6 * BS).every((b) => b === 0x42)).toBe(true);
  });

  it('a miscompare reports the offset of the first differing byte and leaves the medium alone', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, write10(0, 3), { dataOut: fill(3, 0x41) }));
    const verify = fill(3, 0x41);
    verify[3 * BS - 27] = 0x43;
    const s = expectSense(await run(dev, caw(0, 3), { dataOut: Buffer.concat([verify, fill(3, 0x42)]) }), KEY.MISCOMPARE, 0x1d, 0x00);
    expect(s[0]! & 0x80).toBe(0x80); // VALID
    expect(s.readUInt32BE(3)).toBe(3 * BS - 27);
    expect(mem.data.subarray(0, 3 * BS).every((b) => b === 0x41)).toBe(true);
  });

  it('zero blocks is GOOD with no I/O; more than MAXIMUM COMPARE AND WRITE LENGTH is INVALID FIELD IN CDB', async () => {
    const { dev, mem } = await ready(1024);
    expectGood(await run(dev, caw(0, 0)));
    expect(mem.stats.reads + mem.stats.writes).toBe(0);
    expect(MAX_COMPARE_AND_WRITE_BLOCKS).toBe(255);
    expectGood(await run(dev, caw(0, 255), { dataOut: Buffer.concat([fill(255, 0), fill(255, 1)]) }));
  });

  it('the Data-Out buffer must be exactly 2 × NUMBER OF LOGICAL BLOCKS', async () => {
    const { dev, mem } = await ready();
    // Too little: cannot compare and write atomically.
    expectSense(await run(dev, caw(0, 1), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
    // Too much (e.g. 256 blocks truncated to 0 in the one-byte field).
    const s = expectSense(await run(dev, caw(0, 1), { dataOut: fill(4, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 13 });
    expectSense(await run(dev, caw(0, 0), { dataOut: fill(2, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(mem.stats.writes).toBe(0);
  });

  it('range, WRPROTECT and write protection checks', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, caw(63, 2), { dataOut: fill(4, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, caw(64, 0)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, caw(0, 1, 0x20), { dataOut: fill(2, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    const ro = nexus('ro', true);
    await clearUa(dev, ro);
    expectSense(await run(dev, caw(0, 1), { dataOut: fill(2, 0), nx: ro }), KEY.DATA_PROTECT, 0x27, 0x00);
  });

  it('FUA (or WCE = 0) makes the write durable; I/O failures are never GOOD', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, caw(0, 1, 0x08), { dataOut: Buffer.concat([fill(1, 0), fill(1, 1)]) }));
    expect(mem.stats.durableWrites).toBe(1);
    mem.failNext('read');
    expectSense(await run(dev, caw(0, 1), { dataOut: Buffer.concat([fill(1, 1), fill(1, 2)]) }), KEY.MEDIUM_ERROR, 0x11, 0x00);
    mem.failNext('write');
    expectSense(await run(dev, caw(0, 1), { dataOut: Buffer.concat([fill(1, 1), fill(1, 2)]) }), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    expect(mem.data[0]).toBe(1);
  });

  it('is atomic against overlapping writes: a write issued mid-compare lands after it', async () => {
    const mem = new MemoryBackend(64 * BS);
    const gated = new GatedBackend(mem);
    const { dev } = makeDevice({ backend: gated });
    await clearUa(dev);
    await gated.write(fill(1, 0x41), 0, false);
    let open!: () => void;
    gated.gate = new Promise((r) => (open = r));
    const cw = run(dev, caw(0, 1), { dataOut: Buffer.concat([fill(1, 0x41), fill(1, 0x42)]) });
    await new Promise((r) => setImmediate(r)); // CAW now waits inside its read, holding the lock
    const w = run(dev, write10(0, 1), { dataOut: fill(1, 0x43) });
    const other = run(dev, write10(8, 1), { dataOut: fill(1, 0x44) }); // not overlapping: not held up
    expectGood(await other);
    gated.gate = undefined;
    open();
    expectGood(await cw);
    expectGood(await w);
    // The CAW's compare saw 'A' and wrote 'B'; the plain write came after it.
    expect(gated.order.filter((o) => o.endsWith('@0'))).toEqual(['write@0', 'read@0', 'write@0', 'write@0']);
    expect(mem.data[0]).toBe(0x43);
  });

  it('two COMPARE AND WRITEs on the same block serialize: exactly one wins (ATS)', async () => {
    const mem = new MemoryBackend(64 * BS);
    const gated = new GatedBackend(mem);
    const { dev } = makeDevice({ backend: gated });
    const a = nexus('a');
    const b = nexus('b');
    await clearUa(dev, a);
    await clearUa(dev, b);
    let open!: () => void;
    gated.gate = new Promise((r) => (open = r));
    const unlocked = fill(1, 0);
    const r1 = run(dev, caw(5, 1), { dataOut: Buffer.concat([unlocked, fill(1, 1)]), nx: a });
    const r2 = run(dev, caw(5, 1), { dataOut: Buffer.concat([unlocked, fill(1, 2)]), nx: b });
    await new Promise((r) => setImmediate(r));
    gated.gate = undefined;
    open();
    const [x, y] = await Promise.all([r1, r2]);
    expect([x.status, y.status].sort()).toEqual([0x00, 0x02]);
    expect(mem.data[5 * BS]).toBe(x.status === 0 ? 1 : 2);
  });
});

describe('ORWRITE(16)', () => {
  it('ORs the Data-Out buffer into the medium', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, write10(2, 2), { dataOut: fill(2, 0xa0) }));
    const r = await run(dev, orwrite(2, 2), { dataOut: fill(2, 0x05) });
    expectGood(r);
    expect(r.transferLength).toBe(2 * BS);
    expect(mem.data.subarray(2 * BS, 4 * BS).every((b) => b === 0xa5)).toBe(true);
  });

  it('boundaries: zero blocks, past the end, too long, ORPROTECT, write protection', async () => {
    const max = MAX_TRANSFER_BYTES / BS;
    const { dev, mem } = await ready(max + 8);
    expectGood(await run(dev, orwrite(0, 0)));
    expectSense(await run(dev, orwrite(max + 8, 1), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, orwrite(0, max + 1), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, orwrite(0, 1, 0x40), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    const ro = nexus('ro', true);
    await clearUa(dev, ro);
    expectSense(await run(dev, orwrite(0, 1), { dataOut: fill(1, 0), nx: ro }), KEY.DATA_PROTECT, 0x27, 0x00);
    expect(mem.stats.writes).toBe(0);
  });
});

describe('WRITE AND VERIFY', () => {
  it('(10/12/16) write durably and read back; BYTCHK 1 compares', async () => {
    const { dev, mem } = await ready();
    for (const [c, seed] of [[wv10(1, 2), 1], [wv12(3, 2, 0x02), 2], [wv16(5, 2, 0x12), 3]] as const) {
      const r = await run(dev, c, { dataOut: fill(2, seed) });
      expectGood(r);
      expect(r.transferLength).toBe(2 * BS);
    }
    expect(mem.stats.durableWrites).toBe(3);
    expect(mem.data[1 * BS]).toBe(1);
    expect(mem.data[3 * BS]).toBe(2);
    expect(mem.data[6 * BS]).toBe(3);
  });

  it('a medium that does not read back what was written is a MISCOMPARE', async () => {
    const mem = new MemoryBackend(64 * BS);
    const flaky: BlockBackend = {
      description: 'flaky',
      sizeBytes: mem.sizeBytes,
      read: async (buf, off) => {
        await mem.read(buf, off);
        buf[7] ^= 0xff;
      },
      write: mem.write.bind(mem),
      flush: mem.flush.bind(mem),
      close: mem.close.bind(mem),
    };
    const { dev } = makeDevice({ backend: flaky });
    await clearUa(dev);
    const s = expectSense(await run(dev, wv10(0, 1, 0x02), { dataOut: fill(1, 0) }), KEY.MISCOMPARE, 0x1d, 0x00);
    expect(s.readUInt32BE(3)).toBe(7);
    // BYTCHK 0: the medium is read back (readable) but not compared.
    expectGood(await run(dev, wv10(0, 1), { dataOut: fill(1, 0) }));
  });

  it('BYTCHK 10b/11b, WRPROTECT, range and write protection', async () => {
    const { dev, mem } = await ready();
    const s = expectSense(await run(dev, wv10(0, 1, 0x04), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 1, bit: 2 });
    expectSense(await run(dev, wv10(0, 1, 0x06), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, wv16(0, 1, 0x20), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, wv10(64, 1), { dataOut: fill(1, 0) }), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectGood(await run(dev, wv12(63, 0)));
    const ro = nexus('ro', true);
    await clearUa(dev, ro);
    expectSense(await run(dev, wv10(0, 1), { dataOut: fill(1, 0), nx: ro }), KEY.DATA_PROTECT, 0x27, 0x00);
    expect(mem.stats.writes).toBe(0);
  });

  it('a short Data-Out writes the whole blocks that arrived (residual); a partial block is refused', async () => {
    const { dev, mem } = await ready();
    const r = await run(dev, wv10(0, 4), { dataOut: fill(2, 9) });
    expectGood(r);
    expect(r.transferLength).toBe(4 * BS);
    expect(mem.data[BS]).toBe(9);
    expect(mem.data[2 * BS]).toBe(0);
    expectSense(await run(dev, wv10(0, 2), { dataOut: Buffer.alloc(BS + 10) }), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
  });
});

describe('PRE-FETCH and READ DEFECT DATA', () => {
  const pf10 = (lba: number, n: number, immed = 0) => cdb([0x34, immed << 1, ...u32(lba), 0, ...u16(n), 0]);
  const pf16 = (lba: number, n: number) => cdb([0x90, 0, ...u64(lba), ...u32(n), 0, 0]);

  it('PRE-FETCH(10/16): GOOD inside the medium (0 = to the end), LBA OUT OF RANGE beyond', async () => {
    const { dev, mem } = await ready();
    expectGood(await run(dev, pf10(0, 64)));
    expectGood(await run(dev, pf10(10, 0, 1)));
    expectGood(await run(dev, pf16(63, 1)));
    expectGood(await run(dev, pf16(63, 0)));
    expectSense(await run(dev, pf10(63, 2)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, pf10(64, 0)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expectSense(await run(dev, pf16(2 ** 62, 1)), KEY.ILLEGAL_REQUEST, 0x21, 0x00);
    expect(mem.stats.reads).toBe(0);
  });

  it('READ DEFECT DATA(10/12): empty lists in the requested format, truncated to the allocation length', async () => {
    const { dev } = await ready();
    const r = await run(dev, cdb([0x37, 0, 0x18 | 0x05, 0, 0, 0, 0, ...u16(32), 0]));
    expectGood(r);
    expect([...r.data!]).toEqual([0, 0x1d, 0, 0]);
    const r12 = await run(dev, cdb([0xb7, 0x08 | 0x03, 0, 0, 0, 0, ...u32(32), 0, 0]));
    expect([...r12.data!]).toEqual([0, 0x0b, 0, 0, 0, 0, 0, 0]);
    const r2 = await run(dev, cdb([0x37, 0, 0, 0, 0, 0, 0, ...u16(2), 0]));
    expect(r2.data!.length).toBe(2);
  });
});

describe('RangeLock', () => {
  it('shared holders coexist; an exclusive request waits for overlapping ones only', async () => {
    const l = new RangeLock();
    const s1 = l.acquire(0, 10, false) as () => void;
    const s2 = l.acquire(5, 10, false) as () => void;
    expect(typeof s1).toBe('function');
    expect(typeof s2).toBe('function');
    const other = l.acquire(20, 5, true);
    expect(typeof other).toBe('function');
    let got = false;
    const ex = Promise.resolve(l.acquire(8, 1, true)).then((r) => {
      got = true;
      return r;
    });
    await Promise.resolve();
    expect(got).toBe(false);
    s1();
    await Promise.resolve();
    expect(got).toBe(false);
    s2();
    (await ex)();
    expect(got).toBe(true);
    (other as () => void)();
    expect(l.size).toBe(0);
  });

  it('FIFO: a shared request behind a waiting exclusive one waits too (no starvation)', async () => {
    const l = new RangeLock();
    const s1 = l.acquire(0, 4, false) as () => void;
    const order: string[] = [];
    const ex = Promise.resolve(l.acquire(0, 4, true)).then((r) => {
      order.push('ex');
      r();
    });
    const s2 = Promise.resolve(l.acquire(2, 1, false)).then((r) => {
      order.push('shared');
      r();
    });
    await Promise.resolve();
    expect(order).toEqual([]);
    s1();
    await Promise.all([ex, s2]);
    expect(order).toEqual(['ex', 'shared']);
    expect(l.size).toBe(0);
  });

  it('zero-length requests lock nothing; releasing twice is harmless', () => {
    const l = new RangeLock();
    const r = l.acquire(0, 0, true) as () => void;
    r();
    const x = l.acquire(0, 1, true) as () => void;
    x();
    x();
    expect(l.size).toBe(0);
  });
});
