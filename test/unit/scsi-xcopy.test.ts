import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import { LogicalUnit } from '../../src/scsi/logical-unit.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { XCOPY_LIMITS } from '../../src/scsi/xcopy.js';
import { KEY, cdb, clearUa, expectGood, expectSense, makeDevice, nexus, run, u16, u32 } from './scsi-helpers.js';
import { b2b, cscd as cscdOf, paramList, xcopy } from './xcopy-helpers.js';

const BS = 512;
const NAA0 = '6001405abcdef0123456789abcdef012';
const NAA1 = '6001405abcdef0123456789abcdef099';

const cscd = (naa: string, blockSize = BS, pdt = 0) => cscdOf(naa, blockSize, pdt);

const rcr = (sa: number, listId = 0, alloc = 1024) => cdb([0x84, sa, listId, 0, 0, 0, 0, 0, 0, 0, ...u32(alloc), 0, 0]);

async function ready() {
  const d = makeDevice({ blocks: 8192 });
  await clearUa(d.dev);
  return d;
}

function send(dev: ScsiDevice, p: Buffer, nx = nexus()) {
  return run(dev, xcopy(p.length), { dataOut: p, nx });
}

describe('EXTENDED COPY (LID1)', () => {
  it('copies blocks within a logical unit and reports the copy status once', async () => {
    const { dev, mem } = await ready();
    mem.data.fill(0x41, 0, 100 * BS);
    const r = await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 100, 0, 7000), b2b(0, 0, 2100, 0, 4000)]));
    expectGood(r);
    expect(mem.data.subarray(7000 * BS, 7100 * BS).every((b) => b === 0x41)).toBe(true);
    expect(mem.data[6999 * BS]).toBe(0);
    expect(mem.data.subarray(4000 * BS, 4100 * BS).every((b) => b === 0x41)).toBe(true);
    expect(mem.data[4100 * BS]).toBe(0);
    const st = await run(dev, rcr(0, 1));
    expectGood(st);
    expect(st.data![4]).toBe(0x01); // completed without errors
    expect(st.data!.readUInt16BE(5)).toBe(2);
    expect(st.data!.readUInt32BE(8)).toBe(2200 * BS);
    expectSense(await run(dev, rcr(0, 1)), KEY.ILLEGAL_REQUEST, 0x24, 0x00); // returned once
  });

  it('copies between logical units of the target; an unknown designator is an unreachable copy target', async () => {
    const mk = (lun: number, naa: string, mem: MemoryBackend) =>
      new LogicalUnit({ lun, backend: mem, blockSize: BS, readOnly: false, writeCache: true, serial: `S${lun}`, naa, vendor: 'GLFS', product: 'p', revision: '1', targetName: 't' });
    const m0 = new MemoryBackend(64 * BS);
    const m1 = new MemoryBackend(64 * BS);
    m0.data.fill(7, 0, 8 * BS);
    const dev = new ScsiDevice([mk(0, NAA0, m0), mk(1, NAA1, m1)]);
    await clearUa(dev);
    expectGood(await send(dev, paramList([cscd(NAA0), cscd(NAA1)], [b2b(0, 1, 8, 0, 10)])));
    expect(m1.data.subarray(10 * BS, 18 * BS).every((b) => b === 7)).toBe(true);
    const s = expectSense(await send(dev, paramList([cscd(NAA0), cscd('6' + '0'.repeat(31))], [b2b(0, 1, 8, 0, 10)])), 0x0a, 0x08, 0x04);
    expect(s.readUInt32BE(8)).toBe(0); // segment 0
    const st = await run(dev, rcr(0, 1));
    expect(st.data![4]).toBe(0x02); // completed with errors
  });

  it('a parameter list length of zero is GOOD; truncated descriptors are PARAMETER LIST LENGTH ERROR', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, xcopy(0)));
    const p = paramList([cscd(NAA0)], [b2b(0, 0, 8, 0, 100)]);
    expectSense(await run(dev, xcopy(16 + 31), { dataOut: p.subarray(0, 47) }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
    expectSense(await run(dev, xcopy(p.length - 1), { dataOut: p.subarray(0, p.length - 1) }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
    expectSense(await run(dev, xcopy(8), { dataOut: Buffer.alloc(8) }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
  });

  it('enforces the descriptor limits it reports', async () => {
    const { dev } = await ready();
    const seg = b2b(0, 0, 1, 0, 100);
    const tooManyCscd = paramList(Array.from({ length: XCOPY_LIMITS.cscdDescriptors + 1 }, () => cscd(NAA0)), [seg]);
    expectSense(await send(dev, tooManyCscd), KEY.ILLEGAL_REQUEST, 0x26, 0x06);
    const tooManySeg = paramList([cscd(NAA0)], Array.from({ length: XCOPY_LIMITS.segmentDescriptors + 1 }, () => seg));
    expectSense(await send(dev, tooManySeg), KEY.ILLEGAL_REQUEST, 0x26, 0x08);
    const tooLong = paramList([cscd(NAA0)], Array.from({ length: 200 }, () => seg));
    expectSense(await send(dev, tooLong), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
  });

  it('unsupported descriptor types and fields', async () => {
    const { dev } = await ready();
    const fc = cscd(NAA0);
    fc[0] = 0xe0;
    expectSense(await send(dev, paramList([fc], [b2b(0, 0, 1, 0, 1)])), KEY.ILLEGAL_REQUEST, 0x26, 0x07);
    expectSense(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 1, 0, 1, 0x03)])), KEY.ILLEGAL_REQUEST, 0x26, 0x09);
    expectSense(await send(dev, paramList([cscd(NAA0, 4096)], [b2b(0, 0, 1, 0, 1)])), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    expectSense(await send(dev, paramList([cscd(NAA0, BS, 0x01)], [b2b(0, 0, 1, 0, 1)])), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    const inline = paramList([cscd(NAA0)], [b2b(0, 0, 1, 0, 1)]);
    inline.writeUInt32BE(4, 12);
    const withInline = Buffer.concat([inline, Buffer.alloc(4)]);
    expectSense(await send(dev, withInline), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    expectSense(await run(dev, cdb([0x83, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, ...u32(0), 0, 0])), KEY.ILLEGAL_REQUEST, 0x24, 0x00); // LID4
  });

  it('a bad CSCD index or a range beyond the copy target aborts the copy', async () => {
    const { dev, mem } = await ready();
    expectSense(await send(dev, paramList([cscd(NAA0)], [b2b(0, 1, 8, 0, 100)])), 0x0a, 0x08, 0x04);
    expectSense(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 2048, 0, 8191)])), 0x0a, 0x00, 0x00);
    expect(mem.stats.writes).toBe(0);
  });

  it('write-protected destinations and failing I/O are never GOOD', async () => {
    const { dev, mem } = await ready();
    const ro = nexus('ro', true);
    await clearUa(dev, ro);
    expectSense(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 8, 0, 100)]), ro), KEY.DATA_PROTECT, 0x27, 0x00);
    mem.failNext('write', 'EIO');
    expectSense(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 8, 0, 100)])), 0x0a, 0x0c, 0x00);
    mem.failNext('read', 'EIO');
    expectSense(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 8, 0, 100)])), 0x0a, 0x11, 0x00);
  });

  it('LIST ID USAGE 11b holds no status; nexus loss and LU reset discard held status', async () => {
    const { dev } = await ready();
    expectGood(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 1, 0, 1)], 5, 3)));
    expectSense(await run(dev, rcr(0, 5)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectGood(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 1, 0, 1)], 6)));
    await dev.nexusLost(nexus());
    await clearUa(dev);
    expectSense(await run(dev, rcr(0, 6)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectGood(await send(dev, paramList([cscd(NAA0)], [b2b(0, 0, 1, 0, 1)], 7)));
    await dev.resetLogicalUnit(nexus(), 0);
    await clearUa(dev);
    expectSense(await run(dev, rcr(0, 7)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });
});

describe('RECEIVE COPY RESULTS / Third-party Copy VPD', () => {
  it('OPERATING PARAMETERS reports the limits and implemented descriptor types', async () => {
    const { dev } = await ready();
    const d = (await run(dev, rcr(3))).data!;
    expect(d.readUInt32BE(0)).toBe(d.length - 4);
    expect(d.readUInt16BE(8)).toBe(XCOPY_LIMITS.cscdDescriptors);
    expect(d.readUInt16BE(10)).toBe(XCOPY_LIMITS.segmentDescriptors);
    expect(d.readUInt32BE(12)).toBe(XCOPY_LIMITS.descriptorListLength);
    expect([...d.subarray(44, 44 + d[43]!)]).toEqual([0x02, 0xe4]);
    expect((await run(dev, rcr(3, 0, 10))).data!.length).toBe(10);
    expectSense(await run(dev, rcr(1)), KEY.ILLEGAL_REQUEST, 0x24, 0x00); // RECEIVE DATA: not supported
  });

  it('VPD 8Fh lists the supported commands; standard INQUIRY sets 3PC', async () => {
    const { dev } = await ready();
    const std = (await run(dev, cdb([0x12, 0, 0, 0, 96, 0]))).data!;
    expect(std[5]! & 0x08).toBe(0x08);
    const sup = (await run(dev, cdb([0x12, 1, 0x00, 0, 255, 0]))).data!;
    expect([...sup.subarray(4)]).toContain(0x8f);
    const p = (await run(dev, cdb([0x12, 1, 0x8f, ...u16(1024), 0]))).data!;
    expect(p[1]).toBe(0x8f);
    expect(p.readUInt16BE(4)).toBe(0x0001);
    const n = p[8]!;
    expect([...p.subarray(9, 9 + n)]).toEqual([0x83, 1, 0x00, 0x84, 2, 0x00, 0x03]);
  });
});
