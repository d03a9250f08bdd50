// ALUA access states (SPC-4 §5.15.2) and the other descriptor rules LogicalUnit.execute enforces.
import { describe, expect, it } from 'vitest';
import type { AluaState } from '../../src/scsi/alua.js';
import type { LogicalUnit } from '../../src/scsi/logical-unit.js';
import type { AluaCoordinator } from '../../src/scsi/target-port-groups.js';
import { COMMANDS } from '../../src/scsi/commands.js';
import { KEY, cdb, clearUa, expectGood, expectSense, makeDevice, nexus, run, u16, u32 } from './scsi-helpers.js';

const NOT_READY = 0x02;

/** One CDB per command family the state lists name (data-out commands carry an empty parameter list). */
const C = {
  inquiry: cdb([0x12, 0, 0, 0, 96, 0]),
  reportLuns: cdb([0xa0, 0, 0, 0, 0, 0, ...u32(64), 0, 0]),
  requestSense: cdb([0x03, 0, 0, 0, 18, 0]),
  modeSense6: cdb([0x1a, 0x08, 0x3f, 0, 255, 0]),
  modeSense10: cdb([0x5a, 0x08, 0x3f, 0, 0, 0, 0, ...u16(1024), 0]),
  modeSelect6: cdb([0x15, 0x10, 0, 0, 0, 0]),
  modeSelect10: cdb([0x55, 0x10, 0, 0, 0, 0, 0, 0, 0, 0]),
  prIn: cdb([0x5e, 0, 0, 0, 0, 0, 0, ...u16(1024), 0]),
  prOut: cdb([0x5f, 0, 0, 0, 0, ...u32(24), 0]), // REGISTER with both keys 0: a no-op
  readCapacity10: cdb([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  readCapacity16: cdb([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...u32(32), 0, 0]),
  testUnitReady: cdb([0x00]),
  read10: cdb([0x28, 0, ...u32(0), 0, 0, 1, 0]),
  write10: cdb([0x2a, 0, ...u32(0), 0, 0, 0, 0]),
  syncCache10: cdb([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  rsoc: cdb([0xa3, 0x0c, 0, 0, 0, 0, ...u32(4096), 0, 0]),
};
type Name = keyof typeof C;
const ALL = Object.keys(C) as Name[];

/** SPC-4 §5.15.2.4-§5.15.2.7 (and READ CAPACITY in standby, as LIO/tcmu): what each state lets through. */
const ALLOWED: Record<AluaState, Name[]> = {
  'active/optimized': ALL,
  'active/non-optimized': ALL,
  standby: ['inquiry', 'reportLuns', 'requestSense', 'modeSense6', 'modeSense10', 'modeSelect6', 'modeSelect10', 'prIn', 'prOut', 'readCapacity10', 'readCapacity16', 'testUnitReady'],
  unavailable: ['inquiry', 'reportLuns', 'requestSense'],
  transitioning: ['inquiry', 'reportLuns', 'requestSense'],
};
const ASCQ: Partial<Record<AluaState, number>> = { standby: 0x0b, unavailable: 0x0c, transitioning: 0x0a };

describe('ALUA access states (SPC-4 §5.15.2)', () => {
  it('a logical unit starts active/optimized', () => {
    expect(makeDevice().lu.accessState).toBe('active/optimized');
  });

  for (const state of Object.keys(ALLOWED) as AluaState[]) {
    it(`${state}: the listed commands run, the others are NOT READY / LOGICAL UNIT NOT ACCESSIBLE`, async () => {
      const { dev, lu } = makeDevice();
      await clearUa(dev);
      lu.setAccessState(state);
      for (const name of ALL) {
        const r = await run(dev, C[name], name === 'prOut' ? { dataOut: Buffer.alloc(24) } : {});
        if (ALLOWED[state].includes(name)) {
          expect({ name, status: r.status }).toEqual({ name, status: 0 });
        } else {
          expect({ name, status: r.status }).toEqual({ name, status: 2 });
          expectSense(r, NOT_READY, 0x04, ASCQ[state]!);
        }
      }
    });
  }

  it('a pending unit attention is reported before the ALUA state; a reservation conflict after it', async () => {
    const { dev, lu } = makeDevice();
    lu.setAccessState('standby');
    expectSense(await run(dev, C.testUnitReady), KEY.UNIT_ATTENTION, 0x29, 0x00);
    expectSense(await run(dev, C.read10), NOT_READY, 0x04, 0x0b);
    lu.setAccessState('active/optimized');
    const other = nexus('other');
    await clearUa(dev, other);
    expectGood(await run(dev, cdb([0x16]), { nx: other })); // RESERVE(6)
    lu.setAccessState('transitioning');
    expectSense(await run(dev, C.read10), NOT_READY, 0x04, 0x0a);
    lu.setAccessState('active/non-optimized');
    expect((await run(dev, C.read10)).status).toBe(0x18);
  });

  it('back to an active state, everything runs again', async () => {
    const { dev, lu } = makeDevice();
    await clearUa(dev);
    lu.setAccessState('unavailable');
    expectSense(await run(dev, C.read10), NOT_READY, 0x04, 0x0c);
    lu.setAccessState('active/non-optimized');
    expectGood(await run(dev, C.read10));
  });
});

describe('implicit transitions (a coordinator that may move the LU to this port)', () => {
  /** A coordinator that records implicit-transition requests and makes this port active. */
  function movingCoordinator(lu: () => LogicalUnit): AluaCoordinator & { asked: number } {
    return {
      asked: 0,
      groups: () => [],
      activate: () => Promise.resolve(undefined),
      awaitAccess() {
        this.asked++;
        lu().setAccessState('active/optimized');
        return Promise.resolve();
      },
    };
  }
  const prout = (sa: number, type: number, key: bigint, sark: bigint) => {
    const p = Buffer.alloc(24);
    p.writeBigUInt64BE(key, 0);
    p.writeBigUInt64BE(sark, 8);
    return { c: cdb([0x5f, sa, type, 0, 0, ...u32(24), 0]), p };
  };

  it('a media command the reservation refuses gets RESERVATION CONFLICT at a standby port and does not move the LU; one it allows does', async () => {
    let unit: LogicalUnit | undefined;
    const coordinator = movingCoordinator(() => unit!);
    const { dev, lu } = makeDevice({ alua: coordinator });
    unit = lu;
    const holder = nexus('holder');
    const intruder = nexus('intruder');
    await clearUa(dev, holder);
    await clearUa(dev, intruder);
    const reg = prout(0, 0, 0n, 0xabn);
    expectGood(await run(dev, reg.c, { nx: holder, dataOut: reg.p }));
    const res = prout(1, 1, 0xabn, 0n); // RESERVE, Write Exclusive
    expectGood(await run(dev, res.c, { nx: holder, dataOut: res.p }));
    lu.setAccessState('standby');
    expect((await run(dev, C.write10, { nx: intruder })).status).toBe(0x18);
    expect(coordinator.asked, 'the intruder did not move the LU').toBe(0);
    expect(lu.accessState).toBe('standby');
    // A read is allowed under Write Exclusive: it moves the LU here and runs.
    expectGood(await run(dev, C.read10, { nx: intruder }));
    expect(coordinator.asked).toBe(1);
  });

  it('ABORT TASK of a media command waiting for an implicit move completes at once (the volume may hang); nothing is written', async () => {
    let asked = 0;
    const hung: AluaCoordinator = {
      groups: () => [],
      activate: () => Promise.resolve(undefined),
      awaitAccess: () => {
        asked++;
        return new Promise<void>(() => {}); // the coordinator's volume answers nothing
      },
    };
    const { dev, lu, mem } = makeDevice({ alua: hung });
    const A = nexus('a');
    await clearUa(dev, A);
    lu.setAccessState('standby');
    mem.data.fill(0x55, 0, 512);
    const task = dev.createTask(A, 0, cdb([0x2a, 0, ...u32(0), 0, 0, 1, 0]), () => {});
    const response = dev.run(task, { dataOut: Buffer.alloc(512, 0xee), dataInLength: 0 });
    await new Promise((r) => setTimeout(r, 20));
    expect(asked).toBe(1);
    const outcome = await Promise.race([dev.abortTask(A, task), new Promise((r) => setTimeout(() => r('timeout'), 500))]);
    expect(outcome).toBe('complete');
    await response;
    expect(mem.data.subarray(0, 512).equals(Buffer.alloc(512, 0x55))).toBe(true);
  });
});

describe('command descriptor rules', () => {
  it('every command states what it modifies; only the plain WRITEs stream their Data-Out', () => {
    const streaming: string[] = [];
    for (const d of COMMANDS.all()) {
      expect(d.modifies, d.name).toBeDefined();
      if (d.streamsDataOut === true) streaming.push(d.name);
    }
    expect(streaming.sort()).toEqual(['WRITE(10)', 'WRITE(12)', 'WRITE(16)', 'WRITE(6)']);
    const { dev } = makeDevice();
    expect(dev.acceptsDataOutStream(cdb([0x2a]))).toBe(true);
    expect(dev.acceptsDataOutStream(cdb([0x8a]))).toBe(true);
    expect(dev.acceptsDataOutStream(cdb([0x89]))).toBe(false); // COMPARE AND WRITE
    expect(dev.acceptsDataOutStream(cdb([0x2e]))).toBe(false); // WRITE AND VERIFY(10)
    expect(dev.acceptsDataOutStream(cdb([0xc0]))).toBe(false); // unknown
  });

  it('write protection is checked before the handler: every medium-modifying command from a read-only nexus', async () => {
    const { dev, mem } = makeDevice({ blocks: 64 });
    const ro = nexus('ro', true);
    await clearUa(dev, ro);
    const writers = [
      cdb([0x0a, 0, 0, 0, 1, 0]), // WRITE(6)
      cdb([0x2a, 0, ...u32(0), 0, 0, 1, 0]), // WRITE(10)
      cdb([0xaa, 0, ...u32(0), ...u32(1), 0, 0]), // WRITE(12)
      cdb([0x8a, 0, ...u32(0), ...u32(0), ...u32(1), 0, 0]), // WRITE(16)
      cdb([0x2e, 0, ...u32(0), 0, 0, 1, 0]), // WRITE AND VERIFY(10)
      cdb([0x89, 0, ...u32(0), ...u32(0), 0, 0, 0, 1, 0, 0]), // COMPARE AND WRITE
      cdb([0x8b, 0, ...u32(0), ...u32(0), ...u32(1), 0, 0]), // ORWRITE(16)
      cdb([0x41, 0, ...u32(0), 0, 0, 1, 0]), // WRITE SAME(10)
      cdb([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]), // UNMAP
    ];
    for (const c of writers) expectSense(await run(dev, c, { nx: ro, dataOut: Buffer.alloc(1024) }), KEY.DATA_PROTECT, 0x27, 0x00);
    expect(mem.stats.writes + mem.stats.punches).toBe(0);
  });
});
