import fs from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname } from 'node:path';

/** The part of fs-ext (CommonJS, no bundled types) used for locks. */
interface FsExtLock {
  flock(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un', cb: (err: NodeJS.ErrnoException | null) => void): void;
}
const fsExt = createRequire(import.meta.url)('fs-ext') as FsExtLock;

/**
 * flock(2) on the thread pool. On a gluster FUSE mount the locks translator enforces it across
 * clients, and releases it when the holder closes the file or the bricks lose its client.
 */
export function flock(fd: number, flags: 'exnb' | 'un'): Promise<void> {
  return new Promise((resolve, reject) => fsExt.flock(fd, flags, (err) => (err ? reject(err) : resolve())));
}

/** Whether an flock error means "held by someone else" (rather than a failure). */
export function isLockHeld(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EWOULDBLOCK' || code === 'EAGAIN';
}

/** The whole file, or undefined when it does not exist. */
export async function readFileIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await fs.promises.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Replace `target` atomically: write a temporary file in the same directory, rename it over the
 * old one; a reader sees the old or the new contents, never a mix. With `durable`, the data and
 * the rename are fsynced first (after a crash it holds one or the other). `undefined` removes it.
 */
export async function replaceFile(target: string, data: Buffer | undefined, durable: boolean): Promise<void> {
  const dir = dirname(target);
  if (data === undefined) {
    try {
      await fs.promises.unlink(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (durable) await syncDir(dir);
    return;
  }
  const tmp = `${dir}/.${basename(target)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`;
  try {
    const fh = await fs.promises.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, target);
  } catch (err) {
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (durable) await syncDir(dir);
}

/** fsync a directory so a rename/unlink in it is durable. */
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
