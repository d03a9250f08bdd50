/**
 * File I/O that Node does not offer, from the package's Node-API addon (native/file-io.c, built
 * by node-gyp at `npm ci`). Without the addon everything still works, through the thread pool
 * and in smaller direct-I/O pieces.
 *
 * Cached reads: preadv2(2) with RWF_NOWAIT copies what the page cache holds and fails at once
 * with EAGAIN for anything it would have to wait for; a file system that cannot promise that
 * (FUSE, so every gluster mount) fails it with EOPNOTSUPP before it is called. So a read of cached
 * data skips the thread pool's two wake-ups (docs/benchmarks.md, "the thread-pool hop"), and a
 * read that would block still goes to the pool, bounded like every call (bounded-backend.ts): a
 * hung mount cannot stall the event loop through here. (What such a read may still wait for, on
 * a local file system only, is the access-time update it makes: a journal write on a local disk.)
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';

interface FileIoAddon {
  /** Bytes read into `bufs` in order (fewer than asked when only part is cached, 0 at end of file), or -errno. */
  preadvNowait(fd: number, bufs: readonly Buffer[], offset: number): number;
  /** Bytes from the start of `buf` to the first address that is a multiple of `alignment`. */
  alignmentSkip(buf: Buffer, alignment: number): number;
}

function loadAddon(): FileIoAddon | null {
  try {
    // build/Release from both src/backend (tsx) and dist/backend (the build).
    return createRequire(import.meta.url)('../../build/Release/file_io.node') as FileIoAddon;
  } catch {
    return null;
  }
}

const addon = loadAddon();

/** Whether the native addon loaded; without it every read goes to the thread pool. */
export const cachedReadsAvailable = addon !== null;

/** Largest read tried on the event loop: copying it from the page cache takes microseconds. */
export const CACHED_READ_MAX = 256 * 1024;

/** Buffers one call takes at most (Linux's IOV_MAX). */
export const CACHED_READ_MAX_BUFFERS = 1024;

/** readCached's answer for a file that can never be read this way (its file system refuses RWF_NOWAIT). */
export const CACHED_READ_UNSUPPORTED = -1;

const EOPNOTSUPP = constants.errno.EOPNOTSUPP;

/**
 * Fill `bufs` (in order, from `offset`) with what the page cache holds, without blocking. Returns
 * the bytes read: all, a part (the rest is not cached), or 0 (nothing cached, end of file, or an
 * error, which the thread-pool read that follows meets again and reports); or
 * CACHED_READ_UNSUPPORTED.
 */
export function readCached(fd: number, bufs: readonly Buffer[], offset: number): number {
  if (addon === null) return CACHED_READ_UNSUPPORTED;
  const n = addon.preadvNowait(fd, bufs, offset);
  if (n >= 0) return n;
  return -n === EOPNOTSUPP ? CACHED_READ_UNSUPPORTED : 0;
}

/** `size` bytes of uninitialised memory starting at a multiple of `alignment`; null without the addon. */
export function alignedBuffer(size: number, alignment: number): Buffer | null {
  if (addon === null) return null;
  const raw = Buffer.allocUnsafeSlow(size + alignment); // its own backing store: it never moves
  const skip = addon.alignmentSkip(raw, alignment);
  return raw.subarray(skip, skip + size);
}
