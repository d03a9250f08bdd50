// A write the kernel lost stays lost: after a failed fdatasync (or write) the dirty pages are
// gone and the error is reported once (Linux errseq), so a later fdatasync returns 0 for data
// that never reached the disk. These tests use a real file; only the failing system call is
// injected (a spy on node:fs), since a real EIO from fdatasync needs a failing device.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileBackend } from '../../src/backend/file-backend.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { KEY, cdb, clearUa, expectGood, expectSense, makeLu, run, u16, u32 } from './scsi-helpers.js';

const BS = 512;
let dir: string;
const open: FileBackend[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glfs-lost-write-'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const b of open.splice(0)) await b.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function device(file = path.join(dir, 'lun0.img')): Promise<{ dev: ScsiDevice; backend: FileBackend; file: string }> {
  const backend = await FileBackend.open({ path: file, sizeBytes: 1024 * 1024, create: true, readOnly: false, blockSize: BS });
  open.push(backend);
  const dev = new ScsiDevice([makeLu({ backend, blocks: 2048 }).lu]);
  await clearUa(dev);
  return { dev, backend, file };
}

const eio = (): NodeJS.ErrnoException => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5 });
/** The next fdatasync(2) fails with EIO, as when writeback to the volume failed. */
function failNextFdatasync(): void {
  vi.spyOn(fs, 'fdatasync').mockImplementationOnce(((_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    setImmediate(() => cb(eio()));
  }) as typeof fs.fdatasync);
}

const SYNC10 = cdb([0x35]);
const write10 = (lba: number, n: number, flags = 0) => cdb([0x2a, flags, ...u32(lba), 0, ...u16(n), 0]);
const FUA = 0x08;

describe('a lost write is latched: no later flush or FUA write reports GOOD until the LUN is reopened', () => {
  it('SYNCHRONIZE CACHE after a failed fdatasync keeps answering MEDIUM ERROR / WRITE ERROR (03h/0Ch/00h)', async () => {
    const { dev, backend, file } = await device();
    expectGood(await run(dev, write10(0, 1), { dataOut: Buffer.alloc(BS, 0x5a) }));
    failNextFdatasync();
    expectSense(await run(dev, SYNC10), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    // fdatasync would now return 0 (the kernel reported the error once), but the data is gone.
    expectSense(await run(dev, SYNC10), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    await expect(backend.flush()).rejects.toMatchObject({ code: 'EIO' });
    // A FUA write cannot be durable either (SBC-3 §5.29: FUA = 1 means the medium, before status).
    expectSense(await run(dev, write10(1, 1, FUA), { dataOut: Buffer.alloc(BS, 0x11) }), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    // A cached write (WCE = 1) still lands; only its durability is never confirmed.
    expectGood(await run(dev, write10(2, 1), { dataOut: Buffer.alloc(BS, 0x22) }));
    expectSense(await run(dev, SYNC10), KEY.MEDIUM_ERROR, 0x0c, 0x00);

    // Reopened (server restart, new owner): the new descriptor starts clean.
    await backend.close();
    const again = await device(file);
    expectGood(await run(again.dev, SYNC10));
  });

  it('a FUA write whose fdatasync failed fails, and so does every later SYNCHRONIZE CACHE', async () => {
    const { dev } = await device();
    failNextFdatasync();
    expectSense(await run(dev, write10(0, 1, FUA), { dataOut: Buffer.alloc(BS, 0x33) }), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    expectSense(await run(dev, SYNC10), KEY.MEDIUM_ERROR, 0x0c, 0x00);
  });

  it('a failed write (gluster write-behind reports an earlier write\'s loss on a later one) latches too', async () => {
    const { dev } = await device();
    vi.spyOn(fs, 'write').mockImplementationOnce(((...args: unknown[]) => {
      const cb = args[args.length - 1] as (err: NodeJS.ErrnoException | null, n: number) => void;
      setImmediate(() => cb(eio(), 0));
    }) as unknown as typeof fs.write);
    expectSense(await run(dev, write10(0, 1), { dataOut: Buffer.alloc(BS, 0x44) }), KEY.MEDIUM_ERROR, 0x0c, 0x00);
    expectSense(await run(dev, SYNC10), KEY.MEDIUM_ERROR, 0x0c, 0x00);
  });

  it('running out of space is latched with its own sense: DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT (27h/07h)', async () => {
    const { dev } = await device();
    vi.spyOn(fs, 'fdatasync').mockImplementationOnce(((_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      setImmediate(() => cb(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' })));
    }) as typeof fs.fdatasync);
    expectSense(await run(dev, SYNC10), KEY.DATA_PROTECT, 0x27, 0x07);
    expectSense(await run(dev, SYNC10), KEY.DATA_PROTECT, 0x27, 0x07);
  });
});
