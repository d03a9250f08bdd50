/**
 * Direct I/O (O_DIRECT) on a FUSE mount: what LUN files on gluster are opened with (the page
 * cache of one node would go stale when another node writes). Gluster passes O_DIRECT on to its
 * bricks (performance.strict-o-direct), whose file systems refuse I/O not aligned to their sector
 * size; FUSE splits a direct request larger than one FUSE request (32 pages) at page boundaries
 * of the caller's memory and sends the pieces at once.
 * - Memory that starts on a page is split at offsets the bricks accept, so a large write goes
 *   in one system call and FUSE sends its pieces in parallel (alignedCopy: page-aligned memory
 *   from the addon, native-io.ts).
 * - Memory that does not (Node's buffers don't) would be split at byte offsets the bricks refuse
 *   (EINVAL): it goes DIRECT_IO_CHUNK at a time, one after the other.
 */
import fs from 'node:fs';
import { dirname } from 'node:path';
import { alignedBuffer } from './native-io.js';

export const PAGE = 4096;

/** Largest direct read or write of memory not page-aligned issued as one system call: 31 pages always fit one FUSE request, whatever the address. */
export const DIRECT_IO_CHUNK = 31 * PAGE;

/** statfs(2) f_type of a FUSE file system (linux/magic.h), e.g. a GlusterFS mount. */
const FUSE_SUPER_MAGIC = 0x65735546;

/** Whether `path` (or, when it does not exist yet, its directory) is on a FUSE file system. */
export async function onFuse(path: string): Promise<boolean> {
  const st = await fs.promises.statfs(path).catch(() => fs.promises.statfs(dirname(path)).catch(() => undefined));
  return st?.type === FUSE_SUPER_MAGIC;
}

/**
 * `bufs` (`bytes` long) copied into page-aligned memory, when it is larger than one chunk and the
 * addon is there; else null. Used for writes: 1M QD8 writes on the gluster volume went from 55 to
 * 78 IOPS (docs/benchmarks.md). Reads stay in chunks, which measured faster.
 */
export function alignedCopy(bufs: readonly Buffer[], bytes: number): Buffer | null {
  const aligned = bytes > DIRECT_IO_CHUNK ? alignedBuffer(bytes, PAGE) : null;
  if (aligned === null) return null;
  let at = 0;
  for (const b of bufs) at += b.copy(aligned, at);
  return aligned;
}

/** The first DIRECT_IO_CHUNK bytes of `bufs` as one contiguous buffer (copied only when they span several). */
export function directChunk(bufs: readonly Buffer[]): Buffer[] {
  const first = bufs[0]!;
  if (first.length >= DIRECT_IO_CHUNK || bufs.length === 1) return [first.subarray(0, DIRECT_IO_CHUNK)];
  const parts: Buffer[] = [];
  let bytes = 0;
  for (const b of bufs) {
    if (bytes === DIRECT_IO_CHUNK) break;
    const part = b.subarray(0, DIRECT_IO_CHUNK - bytes);
    parts.push(part);
    bytes += part.length;
  }
  return [Buffer.concat(parts, bytes)];
}
