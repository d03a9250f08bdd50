// A logical unit whose storage stops answering (a FUSE mount with its gluster client stopped): its
// commands end by the deadline with NOT READY / LOGICAL UNIT COMMUNICATION TIME-OUT, never GOOD;
// another LU keeps serving; task management and nexus loss complete although the calls are stuck.
import { describe, expect, it } from 'vitest';
import { ABORT_GRACE_MS } from '../../src/backend/bounded-backend.js';
import { LogicalUnit } from '../../src/scsi/logical-unit.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import type { ReservationStore } from '../../src/scsi/reservation-store.js';
import { emptyPrState } from '../../src/scsi/pr-state.js';
import { cdb, clearUa, expectGood, expectSense, KEY, makeDevice, makeLu, nexus, u32 } from './scsi-helpers.js';
import { HangingBackend, within } from './hanging-backend.js';

const read10 = (lba: number) => cdb([0x28, 0, ...u32(lba), 0, 0, 1, 0]);
const write10 = (lba: number) => cdb([0x2a, 0, ...u32(lba), 0, 0, 1, 0]);
const SYNC10 = cdb([0x35]);
const A = nexus('a');

/** LUN 0 on storage that can hang, LUN 1 on memory; calls bounded by `deadlineMs`. */
async function device(deadlineMs: number): Promise<{ dev: ScsiDevice; storage: HangingBackend; lu0: LogicalUnit }> {
  const storage = new HangingBackend(64 * 512);
  const callBounds = { maxInFlight: 4, deadlineMs };
  const { lu: lu0 } = makeLu({ lun: 0, backend: storage, callBounds });
  const { lu: lu1 } = makeLu({ lun: 1, backend: new MemoryBackend(64 * 512), callBounds, naa: '6001405abcdef0123456789abcdef013' });
  const dev = new ScsiDevice([lu0, lu1]);
  await clearUa(dev, A, 0);
  await clearUa(dev, A, 1);
  return { dev, storage, lu0 };
}

const execute = (dev: ScsiDevice, lun: number, c: Buffer, dataOut?: Buffer) =>
  dev.execute({ nexus: A, lun, cdb: c, dataInLength: c[0] === 0x28 ? 512 : 0, ...(dataOut ? { dataOut } : {}) });

describe('a logical unit on storage that stops answering', () => {
  it('READ and WRITE end NOT READY 08h/01h by the deadline, never GOOD; the other LU answers meanwhile', async () => {
    const { dev, storage } = await device(400);
    storage.hung = true;
    const t0 = Date.now();
    const stuck = [execute(dev, 0, write10(1), Buffer.alloc(512, 0xaa)), execute(dev, 0, read10(2))];
    for (let i = 0; i < 5; i++) {
      const other = Date.now();
      expectGood(await execute(dev, 1, write10(i), Buffer.alloc(512, i)));
      expectGood(await execute(dev, 1, read10(i)));
      expect(Date.now() - other).toBeLessThan(200);
    }
    for (const r of await Promise.all(stuck)) expectSense(r, KEY.NOT_READY, 0x08, 0x01);
    expect(Date.now() - t0).toBeLessThan(400 + 2000);
    storage.resume();
  });

  it('ABORT TASK and LOGICAL UNIT RESET of tasks stuck in the storage complete after the grace, not the deadline', async () => {
    const { dev, storage } = await device(30_000);
    storage.hung = true;
    const task = dev.createTask(A, 0, write10(1), () => {});
    const response = dev.run(task, { dataOut: Buffer.alloc(512, 0xaa), dataInLength: 0 });
    await new Promise((r) => setTimeout(r, 20));
    expect(await within(dev.abortTask(A, task), ABORT_GRACE_MS + 1000)).toBe('complete');
    await response;
    expect(task.buffersPinned, 'the stuck write may still read its data: the transport must not reuse it').toBe(true);
    const others = [1, 2, 3].map((lba) => execute(dev, 0, read10(lba)));
    expect(await within(dev.resetLogicalUnit(A, 0), ABORT_GRACE_MS + 1000)).toBe('complete');
    await Promise.all(others);
    expect(await within(dev.nexusLost(A), 100)).toBeUndefined();
    storage.resume();
  });

  it('SYNCHRONIZE CACHE after a WRITE that timed out is not GOOD while the write is unresolved, and GOOD once it has landed', async () => {
    const { dev, storage } = await device(300);
    storage.hung = true;
    expectSense(await execute(dev, 0, write10(1), Buffer.alloc(512, 0xaa)), KEY.NOT_READY, 0x08, 0x01);
    storage.hung = false; // the storage answers new calls, but the old write is still stuck
    expect((await execute(dev, 0, SYNC10)).status).toBe(2);
    expect(storage.mem.stats.flushes).toBe(0);
    const sync = execute(dev, 0, SYNC10);
    storage.resume();
    expectGood(await sync);
    expect(storage.mem.data[512]).toBe(0xaa);
  });

  it('PERSISTENT RESERVE OUT whose store hangs ends NOT READY 08h/01h by the deadline; ABORT TASK of it completes at once', async () => {
    let hung = false;
    const store: ReservationStore = {
      persistsThroughPowerLoss: false,
      load: () => (hung ? new Promise(() => {}) : Promise.resolve({ version: 0, state: emptyPrState() })),
      compareAndSwap: () => new Promise(() => {}),
    };
    const { dev } = makeDevice({ reservationStore: store, callBounds: { maxInFlight: 4, deadlineMs: 300 } });
    await clearUa(dev, A, 0);
    hung = true;
    const registerKey = Buffer.alloc(24);
    registerKey.writeBigUInt64BE(0x1234n, 8);
    const register = cdb([0x5f, 0x06, 0, 0, 0, ...u32(24), 0]);
    expectSense(await execute(dev, 0, register, registerKey), KEY.NOT_READY, 0x08, 0x01);
    const task = dev.createTask(A, 0, register, () => {});
    const response = dev.run(task, { dataOut: registerKey, dataInLength: 0 });
    await new Promise((r) => setTimeout(r, 20));
    expect(await within(dev.abortTask(A, task), 100)).toBe('complete');
    await response;
  });
});
