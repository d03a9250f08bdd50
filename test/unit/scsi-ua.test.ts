import { describe, expect, it } from 'vitest';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { KEY, cdb, clearUa, expectGood, expectSense, makeDevice, makeLu, nexus, run } from './scsi-helpers.js';

const TUR = () => cdb([0x00]);
const requestSense = (alloc = 252, desc = false) => cdb([0x03, desc ? 1 : 0, 0, 0, alloc, 0]);

describe('unit attentions', () => {
  it('POWER ON, RESET, OR BUS DEVICE RESET OCCURRED once per nexus, before anything else', async () => {
    const { dev, mem } = makeDevice();
    // Even an unknown opcode or an out-of-range read reports the UA first.
    expectSense(await run(dev, cdb([0x28, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0])), KEY.UNIT_ATTENTION, 0x29, 0x00);
    expect(mem.stats.reads).toBe(0);
    expectSense(await run(dev, cdb([0xff])), KEY.ILLEGAL_REQUEST, 0x20, 0x00);
    expectGood(await run(dev, TUR()));
  });

  it('INQUIRY and REPORT LUNS neither report nor clear it; REQUEST SENSE returns and clears it', async () => {
    const { dev } = makeDevice();
    expectGood(await run(dev, cdb([0x12, 0, 0, 0, 96, 0])));
    expectGood(await run(dev, cdb([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])));
    const r = await run(dev, requestSense());
    expectGood(r);
    expect(r.data![0]).toBe(0x70);
    expect([r.data![2], r.data![12], r.data![13]]).toEqual([KEY.UNIT_ATTENTION, 0x29, 0x00]);
    expectGood(await run(dev, TUR()));
    const r2 = await run(dev, requestSense());
    expect([r2.data![2], r2.data![12], r2.data![13]]).toEqual([KEY.NO_SENSE, 0, 0]);
  });

  it('REQUEST SENSE honours DESC and the allocation length', async () => {
    const { dev } = makeDevice();
    const r = await run(dev, requestSense(252, true));
    expectGood(r);
    expect([...r.data!.subarray(0, 4)]).toEqual([0x72, KEY.UNIT_ATTENTION, 0x29, 0x00]);
    const t = await run(dev, requestSense(8));
    expect(t.data!.length).toBe(8);
  });

  it('LOGICAL UNIT RESET establishes 29h/03h for every nexus; only on the reset LU', async () => {
    const a = makeLu({ lun: 0 }).lu;
    const b = makeLu({ lun: 1 }).lu;
    const dev = new ScsiDevice([a, b]);
    const n1 = nexus('1');
    const n2 = nexus('2');
    for (const nx of [n1, n2]) for (const lun of [0, 1]) await clearUa(dev, nx, lun);
    expect(await dev.resetLogicalUnit(n2, 0)).toBe('complete');
    expect(await dev.resetLogicalUnit(n2, 9)).toBe('no-such-lun');
    expectSense(await run(dev, TUR(), { nx: n1 }), KEY.UNIT_ATTENTION, 0x29, 0x03);
    expectSense(await run(dev, TUR(), { nx: n2 }), KEY.UNIT_ATTENTION, 0x29, 0x03);
    expectGood(await run(dev, TUR(), { nx: n1, lun: 1 }));
  });

  it('target reset establishes 29h/00h on every LU; a reset supersedes queued UAs', async () => {
    const dev = new ScsiDevice([makeLu({ lun: 0 }).lu, makeLu({ lun: 1 }).lu]);
    const n1 = nexus('1');
    const n2 = nexus('2');
    for (const nx of [n1, n2]) for (const lun of [0, 1]) await clearUa(dev, nx, lun);
    await dev.clearTaskSet(n2, 0); // queues 2F/00 for n1
    await dev.resetTarget(n2);
    expectSense(await run(dev, TUR(), { nx: n1 }), KEY.UNIT_ATTENTION, 0x29, 0x00);
    expectGood(await run(dev, TUR(), { nx: n1 }));
    expectSense(await run(dev, TUR(), { nx: n2, lun: 1 }), KEY.UNIT_ATTENTION, 0x29, 0x00);
    await dev.resetTarget(n1);
    expectSense(await run(dev, TUR(), { nx: n2, lun: 1 }), KEY.UNIT_ATTENTION, 0x29, 0x00);
  });

  it('CLEAR TASK SET raises COMMANDS CLEARED BY ANOTHER INITIATOR for the other nexuses only', async () => {
    const { dev } = makeDevice();
    const n1 = nexus('1');
    const n2 = nexus('2');
    await clearUa(dev, n1);
    await clearUa(dev, n2);
    expect(await dev.clearTaskSet(n1, 0)).toBe('complete');
    expect(await dev.clearTaskSet(n1, 3)).toBe('no-such-lun');
    expectGood(await run(dev, TUR(), { nx: n1 }));
    expectSense(await run(dev, TUR(), { nx: n2 }), KEY.UNIT_ATTENTION, 0x2f, 0x00);
    expectGood(await run(dev, TUR(), { nx: n2 }));
  });

  it('queued UAs are reported oldest first, one per command', async () => {
    const { dev, lu } = makeDevice();
    const n1 = nexus('1');
    const n2 = nexus('2');
    await clearUa(dev, n1);
    await clearUa(dev, n2);
    await dev.clearTaskSet(n1, 0);
    lu.unitAttentions.establish(0x2a01, n1);
    await dev.clearTaskSet(n1, 0); // duplicate not queued twice
    expectSense(await run(dev, TUR(), { nx: n2 }), KEY.UNIT_ATTENTION, 0x2f, 0x00);
    expectSense(await run(dev, TUR(), { nx: n2 }), KEY.UNIT_ATTENTION, 0x2a, 0x01);
    expectGood(await run(dev, TUR(), { nx: n2 }));
  });

  it('a nexus first seen after a reset still gets its power-on UA', async () => {
    const { dev } = makeDevice();
    await dev.resetLogicalUnit(nexus('early'), 0);
    expectSense(await run(dev, TUR(), { nx: nexus('late') }), KEY.UNIT_ATTENTION, 0x29, 0x00);
  });
});

describe('close', () => {
  it('flushes and closes every backend', async () => {
    const a = makeLu({ lun: 0 });
    const b = makeLu({ lun: 1 });
    const dev = new ScsiDevice([a.lu, b.lu]);
    await dev.close();
    expect(a.mem.stats.flushes).toBe(1);
    expect(a.mem.closed && b.mem.closed).toBe(true);
  });

  it('closes all backends even when a flush fails, then reports the failure', async () => {
    const a = makeLu({ lun: 0 });
    const b = makeLu({ lun: 1 });
    a.mem.failNext('flush', 'EIO');
    const dev = new ScsiDevice([a.lu, b.lu]);
    await expect(dev.close()).rejects.toThrow(/flush/);
    expect(a.mem.closed && b.mem.closed).toBe(true);
  });
});
