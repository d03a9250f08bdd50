// The device's task set and task management (SAM-5 §7), without a transport: tasks are entered
// as a transport would enter them, some held inside the device server by a write whose data
// has not arrived, and the TMF methods are checked for which tasks they end, whether each gets
// TASK ABORTED (TAS = 1 for other nexuses), and that they resolve only once the tasks are gone.
import { describe, expect, it, vi } from 'vitest';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import type { ItNexus } from '../../src/scsi/nexus.js';
import type { Task } from '../../src/scsi/task-set.js';
import type { DataOutStream, ScsiResponse } from '../../src/scsi/types.js';
import { KEY, cdb, clearUa, expectGood, expectSense, makeLu, nexus, run, u32 } from './scsi-helpers.js';

const TUR = () => cdb([0x00]);
const write10 = (lba: number, blocks: number) => cdb([0x2a, 0, ...u32(lba), 0, 0, blocks, 0]);

/** Write data that arrives only when the test says so (or fails when the task is aborted). */
class HeldStream implements DataOutStream {
  private waiter: { resolve: (b: Buffer[] | null) => void; reject: (e: Error) => void } | null = null;
  private sent = false;
  constructor(readonly length: number) {}
  next(): Promise<Buffer[] | null> {
    if (this.sent) return Promise.resolve(null);
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject }; });
  }
  deliver(): void {
    this.sent = true;
    this.waiter?.resolve([Buffer.alloc(this.length, 0xab)]);
  }
  fail(): void {
    this.waiter?.reject(new Error('task aborted'));
  }
}

interface Entered {
  task: Task;
  /** Calls of the abort listener: the reportStatus argument of each. */
  aborts: boolean[];
  /** The device server's answer, once a running task has one. */
  response?: Promise<ScsiResponse>;
  stream?: HeldStream;
}

/** A task that is only entered (its data still arriving at the transport). */
function pending(dev: ScsiDevice, nx: ItNexus, lun = 0): Entered {
  const aborts: boolean[] = [];
  const task = dev.createTask(nx, lun, write10(0, 1), (report) => aborts.push(report));
  return { task, aborts };
}

/** A WRITE running in the device server, waiting for its data; an abort fails its stream, as the transport does. */
function running(dev: ScsiDevice, nx: ItNexus, lun = 0): Entered {
  const stream = new HeldStream(512);
  const aborts: boolean[] = [];
  const task = dev.createTask(nx, lun, write10(lun * 8, 1), (report) => {
    aborts.push(report);
    stream.fail();
  });
  const response = dev.run(task, { dataOutStream: stream, dataInLength: 0 });
  return { task, aborts, response, stream };
}

async function twoLunDevice(...nexuses: ItNexus[]): Promise<ScsiDevice> {
  const dev = new ScsiDevice([makeLu({ lun: 0 }).lu, makeLu({ lun: 1 }).lu]);
  for (const nx of nexuses) for (const lun of [0, 1]) await clearUa(dev, nx, lun);
  return dev;
}

const A = nexus('a');
const B = nexus('b');
const C = nexus('c');

describe('task set and task management', () => {
  it('a task is in the task set from arrival until it completes', async () => {
    const dev = await twoLunDevice(A);
    const t = running(dev, A);
    expect(dev.tasks.size).toBe(1);
    expect(t.task.state).toBe('running');
    t.stream!.deliver();
    expectGood(await t.response!);
    expect(t.task.state).toBe('done');
    expect(dev.tasks.size).toBe(0);
  });

  it('ABORT TASK ends a pending task at once, without status for its own nexus', async () => {
    const dev = await twoLunDevice(A);
    const t = pending(dev, A);
    const other = pending(dev, A);
    expect(await dev.abortTask(A, t.task)).toBe('complete');
    expect(t.aborts).toEqual([false]);
    expect(t.task.state).toBe('done');
    expect(other.aborts).toEqual([]);
    expect(dev.tasks.size).toBe(1);
  });

  it('ABORT TASK of a running task resolves only after the device server has let go of it', async () => {
    const dev = await twoLunDevice(A);
    const aborts: boolean[] = [];
    const stream = new HeldStream(512);
    // This transport fails the stream a moment after it is told, as a real one might.
    const task = dev.createTask(A, 0, write10(0, 1), (report) => { aborts.push(report); setTimeout(() => stream.fail(), 20); });
    const response = dev.run(task, { dataOutStream: stream, dataInLength: 0 });
    let settled = false;
    const tmf = dev.abortTask(A, task).then((o) => { settled = true; return o; });
    await new Promise((r) => setTimeout(r, 5));
    expect(aborts).toEqual([false]);
    expect(settled).toBe(false);
    expect(await tmf).toBe('complete');
    expect(task.aborted).toBe(true);
    expect(task.state).toBe('done');
    await response; // the handler answered (its answer is the transport's to suppress)
  });

  it('ABORT TASK SET ends only the issuing nexus\' tasks on that LU, reporting nothing', async () => {
    const dev = await twoLunDevice(A, B);
    const mine = [pending(dev, A), running(dev, A)];
    const otherLun = pending(dev, A, 1);
    const theirs = running(dev, B);
    expect(await dev.abortTaskSet(A, 0)).toBe('complete');
    for (const t of mine) expect(t.aborts).toEqual([false]);
    expect(otherLun.aborts).toEqual([]);
    expect(theirs.aborts).toEqual([]);
    expect(theirs.task.state).toBe('running');
    expect(await dev.abortTaskSet(A, 7)).toBe('no-such-lun');
    // No unit attention for anyone.
    expectGood(await run(dev, TUR(), { nx: B }));
    theirs.stream!.deliver();
    expectGood(await theirs.response!);
  });

  it('CLEAR TASK SET ends every nexus\' tasks on the LU: TASK ABORTED for the others, 2Fh/00h to them', async () => {
    const dev = await twoLunDevice(A, B, C);
    const a = running(dev, A);
    const b = running(dev, B);
    const c = pending(dev, C);
    const lun1 = pending(dev, B, 1);
    expect(await dev.clearTaskSet(A, 0)).toBe('complete');
    expect(a.aborts).toEqual([false]);
    expect(b.aborts).toEqual([true]);
    expect(c.aborts).toEqual([true]);
    expect(b.task.reportAborted).toBe(true);
    expect(lun1.aborts).toEqual([]);
    expect(dev.tasks.size).toBe(1);
    expectGood(await run(dev, TUR(), { nx: A }));
    expectSense(await run(dev, TUR(), { nx: B }), KEY.UNIT_ATTENTION, 0x2f, 0x00);
    expectSense(await run(dev, TUR(), { nx: C }), KEY.UNIT_ATTENTION, 0x2f, 0x00);
  });

  it('LOGICAL UNIT RESET ends every task on the LU and raises 29h/03h; other LUs keep theirs', async () => {
    const dev = await twoLunDevice(A, B);
    const a = running(dev, A);
    const b = pending(dev, B);
    const lun1 = running(dev, B, 1);
    expect(await dev.resetLogicalUnit(A, 0)).toBe('complete');
    expect(a.aborts).toEqual([false]);
    expect(b.aborts).toEqual([true]);
    expect(lun1.aborts).toEqual([]);
    expectSense(await run(dev, TUR(), { nx: A }), KEY.UNIT_ATTENTION, 0x29, 0x03);
    expectSense(await run(dev, TUR(), { nx: B }), KEY.UNIT_ATTENTION, 0x29, 0x03);
    lun1.stream!.deliver();
    expectGood(await lun1.response!);
  });

  it('TARGET RESET ends every task on every LU and raises 29h/00h everywhere', async () => {
    const dev = await twoLunDevice(A, B);
    const entered = [running(dev, A), pending(dev, B), running(dev, B, 1)];
    expect(await dev.resetTarget(B)).toBe('complete');
    expect(entered.map((t) => t.aborts)).toEqual([[true], [false], [false]]);
    expect(dev.tasks.size).toBe(0);
    for (const lun of [0, 1]) expectSense(await run(dev, TUR(), { nx: A, lun }), KEY.UNIT_ATTENTION, 0x29, 0x00);
  });

  it('a read-only nexus may abort its own tasks but not clear or reset what others use', async () => {
    const dev = await twoLunDevice(A, B);
    const reader = nexus('reader', true);
    await clearUa(dev, reader);
    const writer = running(dev, A);
    const own = pending(dev, reader);
    expect(await dev.clearTaskSet(reader, 0)).toBe('not-authorized');
    expect(await dev.resetLogicalUnit(reader, 0)).toBe('not-authorized');
    expect(await dev.resetTarget(reader)).toBe('not-authorized');
    expect(writer.aborts).toEqual([]);
    expectGood(await run(dev, TUR(), { nx: A, lun: 1 }));
    expect(await dev.abortTaskSet(reader, 0)).toBe('complete');
    expect(own.aborts).toEqual([false]);
    writer.stream!.deliver();
    expectGood(await writer.response!);
  });

  it('I_T nexus loss ends that nexus\' tasks without any status, and only them', async () => {
    const dev = await twoLunDevice(A, B);
    const a0 = running(dev, A);
    const a1 = pending(dev, A, 1);
    const b = running(dev, B);
    const lost = vi.fn();
    await dev.nexusLost(A).then(lost);
    expect(lost).toHaveBeenCalled();
    expect(a0.aborts).toEqual([false]);
    expect(a1.aborts).toEqual([false]);
    expect(a0.task.reportAborted).toBe(false);
    expect(b.aborts).toEqual([]);
    b.stream!.deliver();
    expectGood(await b.response!);
  });

  it('a task aborted twice is told once, and the second function still waits for it', async () => {
    const dev = await twoLunDevice(A, B);
    const t = running(dev, B);
    const first = dev.clearTaskSet(A, 0);
    const second = dev.resetLogicalUnit(A, 0);
    expect(await first).toBe('complete');
    expect(await second).toBe('complete');
    expect(t.aborts).toEqual([true]);
  });
});
