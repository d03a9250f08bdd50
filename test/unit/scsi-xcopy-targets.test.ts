// EXTENDED COPY between logical units with different block sizes and states (issue 11 #5, #6).
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import { LogicalUnit } from '../../src/scsi/logical-unit.js';
import { PR_SIDECAR } from '../../src/scsi/reservation-store.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { KEY, cdb, clearUa, expectGood, expectSense, nexus, run } from './scsi-helpers.js';
import { b2b, cscd, paramList, xcopy } from './xcopy-helpers.js';

const NAA0 = '6001405abcdef0123456789abcdef012';
const NAA1 = '6001405abcdef0123456789abcdef099';
const COPY_ABORTED = 0x0a;
const NOT_READY = 0x02;

/** Block → block segment from CSCD 0 (source) to CSCD 1 (destination). */
const segment = (blocks: number, srcLba: number, dstLba: number, dc = false) => b2b(0, 1, blocks, srcLba, dstLba, 0x02, dc);

interface Unit {
  blockSize: number;
  bytes: number;
  mem?: MemoryBackend;
  readOnly?: boolean;
}

/** LUN 0 (source, NAA0) and LUN 1 (destination, NAA1); `copy` sends EXTENDED COPY to LUN `addressed`. */
async function twoUnits(src: Unit, dst: Unit, addressed = 0) {
  const mk = (lun: number, naa: string, u: Unit, mem: MemoryBackend) =>
    new LogicalUnit({
      lun, backend: mem, blockSize: u.blockSize, readOnly: u.readOnly ?? false, writeCache: true, serial: `S${lun}`, naa,
      vendor: 'GLFS', product: 'p', revision: '1', targetName: 't',
    });
  const m0 = src.mem ?? new MemoryBackend(src.bytes);
  const m1 = dst.mem ?? new MemoryBackend(dst.bytes);
  const lu0 = mk(0, NAA0, src, m0);
  const lu1 = mk(1, NAA1, dst, m1);
  const dev = new ScsiDevice([lu0, lu1]);
  await dev.opened().catch(() => undefined);
  await clearUa(dev, nexus(), addressed);
  const copy = (segs: Buffer[], nx = nexus()) => {
    const p = paramList([cscd(NAA0, src.blockSize), cscd(NAA1, dst.blockSize)], segs);
    return run(dev, xcopy(p.length), { dataOut: p, nx, lun: addressed });
  };
  return { dev, lu0, lu1, m0, m1, copy };
}

describe('EXTENDED COPY across block sizes (issue 11 #5)', () => {
  it('the destination LBA and the range lock count destination blocks; nothing is written past the capacity', async () => {
    const { m0, m1, copy } = await twoUnits({ blockSize: 4096, bytes: 64 * 4096 }, { blockSize: 512, bytes: 1024 * 1024 });
    m0.data.fill(0x5a, 0, 4096); // source block 0
    m0.data.fill(0x6b, 4096, 8 * 4096);
    // 1 source block (4096 bytes) to destination LBA 10: destination blocks 10..17.
    expectGood(await copy([segment(1, 0, 10)]));
    expect(m1.data.subarray(10 * 512, 18 * 512).every((b) => b === 0x5a)).toBe(true);
    expect(m1.data[10 * 512 - 1]).toBe(0);
    expect(m1.data[18 * 512]).toBe(0);
    expect(m1.data.subarray(80 * 512, 88 * 512).every((b) => b === 0)).toBe(true);
    // 8 source blocks (64 destination blocks) at destination LBA 2040 of 2048: out of range, nothing written.
    const writes = m1.stats.writes;
    const s = expectSense(await copy([segment(8, 0, 2040)]), COPY_ABORTED, 0x00, 0x00);
    expect(s.readUInt32BE(8)).toBe(0); // segment 0
    expect(m1.stats.writes).toBe(writes);
    // DC = 1: 8 destination blocks (one source block) fit at 2040.
    expectGood(await copy([segment(8, 1, 2040, true)]));
    expect(m1.data.subarray(2040 * 512).every((b) => b === 0x6b)).toBe(true);
  });

  it('a segment that is not a whole number of destination (or source) blocks is an inexact segment', async () => {
    const { m0, m1, copy } = await twoUnits({ blockSize: 512, bytes: 64 * 512 }, { blockSize: 4096, bytes: 16 * 4096 });
    m0.data.fill(0x11);
    // 3 source blocks = 1536 bytes: not a whole destination block (SPC-4: UNEXPECTED INEXACT SEGMENT).
    expectSense(await copy([segment(3, 0, 0)]), COPY_ABORTED, 0x26, 0x0a);
    expect(m1.stats.writes).toBe(0);
    // 8 source blocks = one destination block.
    expectGood(await copy([segment(8, 0, 2)]));
    expect(m1.data.subarray(2 * 4096, 3 * 4096).every((b) => b === 0x11)).toBe(true);
    expect(m1.data[3 * 4096]).toBe(0);
  });
});

describe('EXTENDED COPY applies the copy targets\' access rules (issue 11 #6)', () => {
  it('a destination whose persisted reservation state is unreadable is NOT READY and receives nothing', async () => {
    const bad = new MemoryBackend(64 * 512);
    bad.sidecars.set(PR_SIDECAR, Buffer.from('{ not json'));
    const { m0, m1, copy } = await twoUnits({ blockSize: 512, bytes: 64 * 512 }, { blockSize: 512, bytes: 0, mem: bad });
    m0.data.fill(0x33, 0, 8 * 512);
    expectSense(await copy([segment(8, 0, 0)]), NOT_READY, 0x04, 0x03);
    expect(m1.stats.writes).toBe(0);
    expect(m1.data.every((b) => b === 0)).toBe(true);
  });

  it('a source whose persisted reservation state is unreadable is NOT READY and is not read', async () => {
    const bad = new MemoryBackend(64 * 512);
    bad.sidecars.set(PR_SIDECAR, Buffer.from('{ not json'));
    // Addressed to the destination LU (LUN 1), reading from the unusable LUN 0.
    const { m1, copy } = await twoUnits({ blockSize: 512, bytes: 0, mem: bad }, { blockSize: 512, bytes: 64 * 512 }, 1);
    const reads = bad.stats.reads;
    expectSense(await copy([segment(8, 0, 0)]), NOT_READY, 0x04, 0x03);
    expect(bad.stats.reads).toBe(reads);
    expect(m1.stats.writes).toBe(0);
  });

  it('a read-only destination LU or a reservation held by another nexus refuses the copy as a WRITE would', async () => {
    const ro = await twoUnits({ blockSize: 512, bytes: 64 * 512 }, { blockSize: 512, bytes: 64 * 512, readOnly: true });
    expectSense(await ro.copy([segment(8, 0, 0)]), KEY.DATA_PROTECT, 0x27, 0x00);
    expect(ro.m1.stats.writes).toBe(0);

    const rsv = await twoUnits({ blockSize: 512, bytes: 64 * 512 }, { blockSize: 512, bytes: 64 * 512 });
    const other = nexus('other');
    await clearUa(rsv.dev, other, 1);
    expectGood(await run(rsv.dev, cdb([0x16]), { nx: other, lun: 1 })); // RESERVE(6) of LUN 1 by another nexus
    expect((await rsv.copy([segment(8, 0, 0)])).status).toBe(0x18);
    expect(rsv.m1.stats.writes).toBe(0);
  });

  it('a copy target in a non-active ALUA state refuses the copy with its NOT READY sense', async () => {
    const t = await twoUnits({ blockSize: 512, bytes: 64 * 512 }, { blockSize: 512, bytes: 64 * 512 });
    t.lu1.setAccessState('standby');
    expectSense(await t.copy([segment(8, 0, 0)]), NOT_READY, 0x04, 0x0b);
    t.lu1.setAccessState('active/non-optimized');
    t.lu0.setAccessState('transitioning');
    // Addressed to LUN 0 itself: its own state refuses the command.
    expectSense(await t.copy([segment(8, 0, 0)]), NOT_READY, 0x04, 0x0a);
    expect(t.m1.stats.writes).toBe(0);
  });

  it('the source is refused as a READ would be: unavailable, or exclusive-access reserved by another nexus', async () => {
    const t = await twoUnits({ blockSize: 512, bytes: 64 * 512 }, { blockSize: 512, bytes: 64 * 512 }, 1);
    t.lu0.setAccessState('unavailable');
    expectSense(await t.copy([segment(8, 0, 0)]), NOT_READY, 0x04, 0x0c);
    t.lu0.setAccessState('active/optimized');
    const other = nexus('other');
    await clearUa(t.dev, other, 0);
    expectGood(await run(t.dev, cdb([0x16]), { nx: other, lun: 0 })); // RESERVE(6): reads conflict too
    expect((await t.copy([segment(8, 0, 0)])).status).toBe(0x18);
    expect(t.m0.stats.reads).toBe(0);
    expect(t.m1.stats.writes).toBe(0);
  });
});
