// Range locks (SBC-3 §5.2 COMPARE AND WRITE atomicity) and task management: a command waiting for
// a range lock has not started its work, so ABORT TASK ends it at once (SAM-5 §7.2), and a request
// given up leaves the queue so those behind it are granted.
import { describe, expect, it } from 'vitest';
import { RangeLock, LockWaitAborted } from '../../src/scsi/range-lock.js';
import { cdb, clearUa, makeDevice, nexus, u16, u32, u64 } from './scsi-helpers.js';
import { b2b, cscd, paramList, xcopy } from './xcopy-helpers.js';

const write10 = (lba: number, blocks: number) => cdb([0x2a, 0, ...u32(lba), 0, 0, blocks, 0]);
const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))]);

describe('range lock waits and task management', () => {
  // WRITE, UNMAP, WRITE SAME and EXTENDED COPY take the shared lock: a task aborted while it waits
  // for it (a COMPARE AND WRITE holds an overlapping range) leaves at once, and writes nothing.
  const NAA = '6001405abcdef0123456789abcdef012';
  const unmapList = Buffer.from([0, 22, 0, 16, 0, 0, 0, 0, ...u64(0), ...u32(8), 0, 0, 0, 0]);
  const copyList = paramList([cscd(NAA, 512)], [b2b(0, 0, 8, 16, 0)]);
  it.each([
    ['WRITE(10)', write10(0, 1), Buffer.alloc(512, 0xee)],
    ['UNMAP', cdb([0x42, 0, 0, 0, 0, 0, 0, ...u16(unmapList.length), 0]), unmapList],
    ['WRITE SAME(16)', cdb([0x93, 0, ...u64(0), ...u32(8), 0, 0]), Buffer.alloc(512, 0xee)],
    ['EXTENDED COPY', xcopy(copyList.length), copyList],
  ])('ABORT TASK of %s waiting for an overlapping exclusive lock resolves at once; nothing is written', async (_name, c, dataOut) => {
    const { dev, lu, mem } = makeDevice({ naa: NAA });
    mem.data.fill(0x55, 0, 8 * 512); // what the command would overwrite
    mem.data.fill(0xee, 16 * 512, 24 * 512); // what the copy would copy
    const A = nexus('a');
    await clearUa(dev, A);
    const hold = lu.locks.acquire(0, 8, true) as () => void;
    const task = dev.createTask(A, 0, c, () => {});
    const response = dev.run(task, { dataOut, dataInLength: 0 });
    await new Promise((r) => setTimeout(r, 20));
    expect(task.state).toBe('running');
    expect(await within(dev.abortTask(A, task), 500)).toBe('complete');
    await response;
    hold();
    await new Promise((r) => setTimeout(r, 20));
    expect(mem.data.subarray(0, 8 * 512).equals(Buffer.alloc(8 * 512, 0x55))).toBe(true);
    expect(lu.locks.size).toBe(0);
  });

  it('a request given up on abort leaves the queue: a later one it blocked is granted', async () => {
    const lock = new RangeLock();
    const release = lock.acquire(0, 4, false) as () => void;
    let aborted = false;
    const listeners: Array<() => void> = [];
    const watch = { get aborted() { return aborted; }, whenAborted(l: () => void) { listeners.push(l); return () => {}; } };
    const exclusive = lock.acquire(2, 4, true, watch) as Promise<() => void>;
    const shared = lock.acquire(4, 4, false); // overlaps the waiting exclusive request: queued behind it
    expect(typeof shared).not.toBe('function');
    aborted = true;
    for (const l of listeners) l();
    expect(await within(exclusive.catch((e: unknown) => e), 200)).toBeInstanceOf(LockWaitAborted);
    expect(typeof (await within(shared as Promise<() => void>, 200))).toBe('function');
    release();
  });
});
