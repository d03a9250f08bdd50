// The owner's way to the LUN file: the loss of the gluster client behind it (ENOTCONN) is a path
// error, a descriptor dead for good is told from one whose bricks come back, and a lost write
// stays latched across a reopen by the same owner. Real files; only the failing system call is
// injected (a spy on node:fs), since ENOTCONN needs a gluster client to die.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileBackend } from '../../src/backend/file-backend.js';
import { LostWriteError } from '../../src/backend/lost-write.js';
import { OwnedFile } from '../../src/cluster/owned-file.js';

const BS = 512;
let dir: string;
let file: string;
const opened: FileBackend[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glfs-owned-file-'));
  file = path.join(dir, 'lun0.img');
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const b of opened.splice(0)) await b.close().catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function openFile(): Promise<FileBackend> {
  const b = await FileBackend.open({ path: file, sizeBytes: 1024 * 1024, create: true, readOnly: false, blockSize: BS });
  opened.push(b);
  return b;
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: injected`), { code });
/** EBADFD as Node reports it (libuv has no name for errno 77). */
const ebadfd = (): NodeJS.ErrnoException => Object.assign(new Error('Unknown system error -77'), { code: 'UNKNOWN', errno: -77 });

/** The next write(2) fails with `err` (an errno code, or the error itself). */
function failNextWrite(err: string | NodeJS.ErrnoException): void {
  vi.spyOn(fs, 'write').mockImplementationOnce(((...args: unknown[]) => {
    const cb = args[args.length - 1] as (e: NodeJS.ErrnoException | null, n: number) => void;
    setImmediate(() => cb(typeof err === 'string' ? errno(err) : err, 0));
  }) as unknown as typeof fs.write);
}

/** Every fstat(2) fails with `err`, as on a FUSE file whose client is gone (ENOTCONN) or a strict-locks descriptor (EBADFD). */
function deadDescriptor(err: () => NodeJS.ErrnoException = () => errno('ENOTCONN')): void {
  vi.spyOn(fs, 'fstat').mockImplementation(((...args: unknown[]) => {
    const cb = args[args.length - 1] as (e: NodeJS.ErrnoException | null) => void;
    setImmediate(() => cb(err()));
  }) as unknown as typeof fs.fstat);
}

describe('OwnedFile', () => {
  it('a node that does not own the LU answers ENOTOWNER (NOT READY 04h/0Ah), and flush has nothing to do', async () => {
    const media = new OwnedFile(file, () => undefined);
    await expect(media.read(Buffer.alloc(BS), 0)).rejects.toMatchObject({ code: 'ENOTOWNER' });
    await expect(media.write(Buffer.alloc(BS), 0, false)).rejects.toMatchObject({ code: 'ENOTOWNER' });
    await expect(media.flush()).resolves.toBeUndefined();
  });

  it('ENOTCONN from the file is a lost path: the owner is told at once and the command gets ENOTOWNER', async () => {
    const lostPath: unknown[] = [];
    const media = new OwnedFile(file, (err) => lostPath.push(err));
    media.serve(await openFile(), 1);
    failNextWrite('ENOTCONN');
    await expect(media.write(Buffer.alloc(BS, 1), 0, false)).rejects.toMatchObject({ code: 'ENOTOWNER' });
    expect(lostPath).toHaveLength(1);
    // Any other failure is the medium's and reported as is.
    failNextWrite('EIO');
    await expect(media.write(Buffer.alloc(BS, 1), 0, false)).rejects.toMatchObject({ code: 'EIO' });
    expect(lostPath).toHaveLength(1);
  });

  it('after ENOTCONN the descriptor is dead for good only if it still fails (a new client), not when its bricks came back', async () => {
    const media = new OwnedFile(file, () => undefined);
    media.serve(await openFile(), 1);
    expect(await media.deadForGood(), 'no ENOTCONN seen').toBe(false);
    failNextWrite('ENOTCONN');
    await media.write(Buffer.alloc(BS), 0, false).catch(() => undefined);
    expect(await media.deadForGood(), 'the descriptor answers again').toBe(false);
    failNextWrite('ENOTCONN');
    await media.write(Buffer.alloc(BS), 0, false).catch(() => undefined);
    deadDescriptor();
    expect(await media.deadForGood(), 'fstat still answers ENOTCONN').toBe(true);
  });

  it('an owner fenced before any media command met the lost path still has its descriptor checked once the volume answers', async () => {
    const media = new OwnedFile(file, () => undefined);
    media.serve(await openFile(), 1);
    deadDescriptor();
    expect(await media.deadForGood(), 'nothing made the descriptor suspect').toBe(false);
    media.suspect();
    expect(await media.deadForGood(), 'fenced: fstat answers ENOTCONN').toBe(true);
  });

  it('EBADFD (client.strict-locks: a locked descriptor is not reopened after the bricks return) is a lost path and a dead descriptor', async () => {
    const lostPath: unknown[] = [];
    const media = new OwnedFile(file, (err) => lostPath.push(err));
    media.serve(await openFile(), 1);
    failNextWrite(ebadfd());
    await expect(media.write(Buffer.alloc(BS), 0, false)).rejects.toMatchObject({ code: 'ENOTOWNER' });
    expect(lostPath).toHaveLength(1);
    deadDescriptor(ebadfd);
    expect(await media.deadForGood()).toBe(true);
  });

  it('a write lost through one descriptor stays latched in the next one only when no other owner came between', async () => {
    const media = new OwnedFile(file, () => undefined);
    media.serve(await openFile(), 3);
    failNextWrite('EIO');
    await expect(media.write(Buffer.alloc(BS), 0, false)).rejects.toMatchObject({ code: 'EIO' });
    await media.release(3)?.close();

    media.serve(await openFile(), 4); // owner again at the next epoch
    await expect(media.flush()).rejects.toBeInstanceOf(LostWriteError);
    await media.release(4)?.close();

    media.serve(await openFile(), 6); // another node owned epoch 5 and started from the disk
    await expect(media.flush()).resolves.toBeUndefined();
  });
});
