import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { BackendExtent, BlockBackend } from './block-backend.js';
import { flock, isLockHeld, readFileIfExists, replaceFile } from './atomic-file.js';
import { CACHED_READ_MAX, CACHED_READ_MAX_BUFFERS, CACHED_READ_UNSUPPORTED, cachedReadsAvailable, readCached } from './native-io.js';
import { alignedCopy, DIRECT_IO_CHUNK, directChunk, onFuse, PAGE } from './direct-io.js';
import { LostWriteLatch, type LostWriteError } from './lost-write.js';
import { asOutOfSpace } from './out-of-space.js';
import { RequestMerger } from './request-merger.js';

/** The part of fs-ext (CommonJS, no bundled types) this module uses. */
interface FsExt {
  /** lseek(2) on the thread pool; `whence` is passed through, so SEEK_DATA/SEEK_HOLE work on Linux. */
  seek(fd: number, offset: number, whence: number, cb: (err: NodeJS.ErrnoException | null, pos: number) => void): void;
}
/** The part of fs-native-extensions (holepunchto; CommonJS, prebuilt N-API addon) this module uses. */
interface FsNativeExt {
  /** fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) on Linux, on the thread pool. */
  trim(fd: number, offset: number, length: number): Promise<void>;
}
const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as FsExt;
const fsNative = require('fs-native-extensions') as FsNativeExt;

/** lseek(2) whence values for holes (Linux ≥ 3.1; other file systems treat the file as all data). */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
/** errno names meaning "this file system cannot punch holes" rather than "the I/O failed". */
const NO_PUNCH = new Set(['EOPNOTSUPP', 'ENOTSUP', 'ENOSYS']);
/** errno names meaning "this file system does not know SEEK_DATA/SEEK_HOLE". */
const NO_SEEK_HOLE = new Set(['EOPNOTSUPP', 'ENOTSUP', 'ENOSYS', 'EINVAL']);
/** Largest zero buffer written when punching is not supported. */
const ZERO_CHUNK = 1024 * 1024;

export interface FileBackendOptions {
  path: string;
  /** Configured size: the file is created at this size (with `create`), or grown to it (never shrunk). */
  sizeBytes?: number;
  /** Create the file when it is missing; without it a missing file is an error (ENOENT). */
  create?: boolean;
  readOnly: boolean;
  blockSize: number;
  /**
   * Open with O_DIRECT: no page cache on this host. Default: on a FUSE mount (gluster), where the
   * kernel keeps pages of a file across opens and another node's writes do not invalidate them.
   */
  directIo?: boolean;
}

function errnoError(message: string, code: string, cause?: unknown): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(message, cause === undefined ? undefined : { cause });
  err.code = code;
  return err;
}

function pOpen(path: string, flags: number, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}
function pClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}
function pFstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}
function pFtruncate(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, len, (err) => (err ? reject(err) : resolve())));
}
function pFdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}
function pSeek(fd: number, offset: number, whence: number): Promise<number> {
  return new Promise((resolve, reject) => fsExt.seek(fd, offset, whence, (err, pos) => (err ? reject(err) : resolve(pos))));
}

/**
 * A LUN backed by a regular file (typically on a GlusterFS FUSE mount), accessed with positional
 * callback-style fs.read/fs.write on a raw fd (cheaper than FileHandle on the hot path).
 *
 * The file is locked with an exclusive flock for the lifetime of the backend, so only one
 * backend at a time writes it: the lock is what makes a server the owner of a LUN file that
 * several servers share (src/cluster/shared-lun.ts).
 */
export class FileBackend implements BlockBackend {
  readonly description: string;
  /** Capacity: changes only through grow(). */
  sizeBytes: number;
  readonly readOnly: boolean;
  /** True when open() created the file. */
  readonly created: boolean;
  /** Previous file size when open() grew the file to the configured size. */
  readonly grewFrom?: number;
  /** Size of the file on disk (sizeBytes is this rounded down to a whole block). */
  fileSizeBytes: number;

  /** File system block size (st_blksize, clamped to [block size, 1 MiB]): the hole granularity. */
  readonly allocationUnit: number;
  /** Opened with O_DIRECT: every read comes from the volume, none from this host's page cache. */
  readonly directIo: boolean;

  private fd: number;
  private closing?: Promise<void>;
  /** Cleared when the file system refuses FALLOC_FL_PUNCH_HOLE; zeros are written instead. */
  private canPunch = true;
  /** Reads of cached data are served on the event loop (not with O_DIRECT: it bypasses the cache); cleared when the file system refuses. */
  private cachedReads: boolean;
  /** Cleared when the file system refuses SEEK_DATA/SEEK_HOLE; everything then reads as mapped. */
  private canSeekHoles = true;
  /** Set by the first failed write or flush: no later flush or durable write succeeds (lost-write.ts). */
  private readonly lostWrite: LostWriteLatch;

  private constructor(
    path: string,
    fd: number,
    sizeBytes: number,
    fileSizeBytes: number,
    readOnly: boolean,
    created: boolean,
    grewFrom: number | undefined,
    allocationUnit: number,
    directIo: boolean,
  ) {
    this.allocationUnit = allocationUnit;
    this.directIo = directIo;
    this.cachedReads = cachedReadsAvailable && !directIo;
    this.description = path;
    this.lostWrite = new LostWriteLatch(path);
    this.fd = fd;
    this.sizeBytes = sizeBytes;
    this.fileSizeBytes = fileSizeBytes;
    this.readOnly = readOnly;
    this.created = created;
    if (grewFrom !== undefined) this.grewFrom = grewFrom;
  }

  static async open(opts: FileBackendOptions): Promise<FileBackend> {
    const { path, sizeBytes, readOnly, blockSize } = opts;
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new Error(`invalid block size ${blockSize}`);
    if (sizeBytes !== undefined && (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)) {
      throw new Error(`${path}: invalid size ${sizeBytes}`);
    }
    const { O_CREAT, O_EXCL } = fs.constants;
    const directIo = opts.directIo ?? (await onFuse(path));
    const O_RDONLY = fs.constants.O_RDONLY | (directIo ? fs.constants.O_DIRECT : 0);
    const O_RDWR = fs.constants.O_RDWR | (directIo ? fs.constants.O_DIRECT : 0);

    let fd: number;
    let created = false;
    try {
      fd = await pOpen(path, readOnly ? O_RDONLY : O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fileError(path, 'cannot open', err);
      if (readOnly) throw errnoError(`${path} does not exist (a read-only LUN file is never created)`, 'ENOENT', err);
      if (opts.create !== true) {
        throw errnoError(`${path} does not exist; set "create": true on the LUN to create it (an unmounted volume must not become a blank disk)`, 'ENOENT', err);
      }
      if (sizeBytes === undefined || sizeBytes === 0) {
        throw errnoError(`${path} does not exist and no size is configured to create it`, 'ENOENT', err);
      }
      try {
        fd = await pOpen(path, O_RDWR | O_CREAT | O_EXCL, 0o644);
        created = true;
      } catch (err2) {
        // Lost a creation race with another process: open what it created.
        if ((err2 as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(path, 'cannot create', err2);
        fd = await pOpen(path, O_RDWR).catch((e: unknown) => {
          throw fileError(path, 'cannot open', e);
        });
      }
    }

    try {
      // Lock before looking at or changing the size, so a file in use is never touched.
      try {
        await flock(fd, 'exnb');
      } catch (err) {
        if (isLockHeld(err)) {
          throw errnoError(`${path} is in use by another server (exclusive lock held)`, 'ELOCKED', err);
        }
        throw fileError(path, 'cannot lock', err);
      }

      const st = await pFstat(fd);
      if (!st.isFile()) throw errnoError(`${path} is not a regular file`, 'EINVAL');
      let fileSize = st.size;
      let grewFrom: number | undefined;
      if (sizeBytes !== undefined && sizeBytes > fileSize && !readOnly) {
        // Grow sparse; never shrink (that would destroy data).
        await pFtruncate(fd, sizeBytes);
        if (!created) grewFrom = fileSize;
        fileSize = sizeBytes;
      }
      const capacity = Math.floor(fileSize / blockSize) * blockSize;
      if (capacity === 0) {
        throw errnoError(`${path} is smaller than one ${blockSize}-byte block (${fileSize} bytes)`, 'EINVAL');
      }
      if (directIo) await probeDirectIo(path, fd, blockSize);
      return new FileBackend(path, fd, capacity, fileSize, readOnly, created, grewFrom, allocationUnitOf(st.blksize, blockSize), directIo);
    } catch (err) {
      await pClose(fd).catch(() => undefined); // closing the fd also drops the lock
      throw err;
    }
  }

  /** Reads and writes go through these: adjacent requests become one preadv/pwritev (request-merger.ts). */
  private readonly reads = new RequestMerger({
    single: (r) => (this.readFromCache(r.bufs, r.offset, r.bytes) ? Promise.resolve() : this.readOne(r.bufs[0]!, r.offset)),
    merged: (offset, bufs, bytes) => new Promise((resolve, reject) => {
      if (this.fd < 0) return reject(closedError(this.description));
      if (this.readFromCache(bufs, offset, bytes)) return resolve(true);
      if (this.directIo) return resolve(this.readEach(bufs, offset).then(() => true)); // one contiguous buffer per call
      fs.readv(this.fd, bufs, offset, (err, n) => (err ? reject(err) : resolve(n === bytes)));
    }),
  });
  private readonly writes = new RequestMerger({
    single: (r) => this.writeAll(r.bufs, r.offset, r.bytes, r.durable),
    merged: (offset, bufs, bytes, durable) => this.writeAll(bufs, offset, bytes, durable).then(() => true),
  });

  read(buf: Buffer, offset: number): Promise<void> {
    if (this.fd < 0) return Promise.reject(closedError(this.description));
    if (buf.length === 0) return Promise.resolve();
    return this.reads.submit(offset, [buf], buf.length, false);
  }

  write(data: Buffer | readonly Buffer[], offset: number, durable: boolean): Promise<void> {
    if (this.fd < 0) return Promise.reject(closedError(this.description));
    const bufs = (Buffer.isBuffer(data) ? [data] : data).filter((b) => b.length > 0);
    let bytes = 0;
    for (const b of bufs) bytes += b.length;
    if (bytes === 0) return durable ? this.flush() : Promise.resolve();
    // A plain write (WCE = 1) still goes to the file after a lost write; its durability is only
    // ever promised by a flush, which the latch refuses.
    if (!durable) return this.lostWrite.watch(this.writes.submit(offset, bufs, bytes, false));
    return this.lostWrite.guard(() => this.writes.submit(offset, bufs, bytes, true));
  }

  /**
   * Whether all of a read was copied from the page cache on the event loop (native-io.ts). One
   * only partly cached is then read whole through the thread pool.
   */
  private readFromCache(bufs: readonly Buffer[], offset: number, bytes: number): boolean {
    if (!this.cachedReads || this.fd < 0 || bytes > CACHED_READ_MAX || bufs.length > CACHED_READ_MAX_BUFFERS) return false;
    const n = readCached(this.fd, bufs, offset);
    if (n === CACHED_READ_UNSUPPORTED) this.cachedReads = false;
    return n === bytes;
  }

  /** Adjacent buffers from `offset`, each read on its own. */
  private readEach(bufs: readonly Buffer[], offset: number): Promise<void> {
    let at = offset;
    return Promise.all(bufs.map((b) => {
      const p = this.readOne(b, at);
      at += b.length;
      return p;
    })).then(() => undefined);
  }

  /** pread(2) until `buf` is full (DIRECT_IO_CHUNK at a time with direct I/O); zeros past the end of the file. */
  private readOne(buf: Buffer, offset: number): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return Promise.reject(closedError(this.description));
    // Reads stay in chunks even where aligned memory would allow one call: at 1M QD8 on the
    // gluster volume, 255 IOPS in one call against 340 in chunks (docs/benchmarks.md).
    const most = this.directIo ? DIRECT_IO_CHUNK : buf.length;
    return new Promise((resolve, reject) => {
      const total = buf.length;
      let done = 0;
      const step = (err: NodeJS.ErrnoException | null, n: number): void => {
        if (err) return reject(err);
        if (n === 0) {
          // End of file: a sparse file never ends inside sizeBytes, but if it shrank underneath
          // us, report zeros rather than stale bytes from allocUnsafe.
          buf.fill(0, done);
          return resolve();
        }
        done += n;
        if (done >= total) return resolve();
        fs.read(fd, buf, done, Math.min(most, total - done), offset + done, step);
      };
      fs.read(fd, buf, 0, Math.min(most, total), offset, step);
    });
  }

  /**
   * pwrite(2), or pwritev(2) for several buffers, continuing after short writes; then fdatasync if
   * durable. Direct I/O larger than one chunk is copied into page-aligned memory and written in one
   * call (direct-io.ts), or without the addon DIRECT_IO_CHUNK at a time.
   */
  private writeAll(bufs: readonly Buffer[], offset: number, bytes: number, durable: boolean): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return Promise.reject(closedError(this.description));
    const aligned = this.directIo ? alignedCopy(bufs, bytes) : null;
    return new Promise((resolve, reject) => {
      let rest = aligned === null ? [...bufs] : [aligned];
      let pos = offset;
      // Aligned memory stays so while whole pages are written; after that, chunks.
      let onPage = aligned !== null;
      const next = (): Buffer[] => (this.directIo && !onPage ? directChunk(rest) : rest);
      const step = (err: NodeJS.ErrnoException | null, n: number): void => {
        if (err) return void asOutOfSpace(this.description, err, rest.reduce((sum, b) => sum + b.length, 0)).then(reject);
        if (n === 0) return reject(errnoError(`${this.description}: write made no progress`, 'EIO'));
        pos += n;
        onPage &&= n % PAGE === 0;
        rest = dropBytes(rest, n);
        if (rest.length > 0) return writeSome(fd, next(), pos, step);
        if (!durable) return resolve();
        // Another request may have lost a write since this one was submitted: then this
        // fdatasync could return 0 with the data gone (the error is reported once).
        if (this.lostWrite.error) return reject(this.lostWrite.error);
        fs.fdatasync(fd, (e) => (e ? reject(e) : resolve()));
      };
      writeSome(fd, next(), pos, step);
    });
  }

  /** The write this descriptor lost, if any (lost-write.ts). */
  get lostWriteError(): LostWriteError | undefined {
    return this.lostWrite.error;
  }

  /**
   * Start with `err` latched: this descriptor replaces one of the same owner that lost a write,
   * with no other owner in between, so nothing written through that one may be reported durable.
   */
  inheritLostWrite(err: LostWriteError): void {
    this.lostWrite.record(err);
  }

  /** fstat(2) on the descriptor: rejects (ENOTCONN) once the gluster client behind it is gone for good. */
  probe(): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return Promise.reject(closedError(this.description));
    return new Promise((resolve, reject) => fs.fstat(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** fdatasync(2); after a lost write, the latched error (lost-write.ts). */
  flush(): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return Promise.reject(closedError(this.description));
    return this.lostWrite.guard(() => pFdatasync(fd));
  }

  /**
   * fallocate(PUNCH_HOLE | KEEP_SIZE) through fs-native-extensions; the kernel releases whole
   * file system blocks and zeroes partial ones. A file system without hole punching gets zeros
   * written instead, so the range still reads as zeros (what LBPRZ promises).
   */
  async punchHole(offset: number, length: number, durable: boolean): Promise<void> {
    const fd = this.fd;
    if (fd < 0) throw closedError(this.description);
    if (length <= 0) return;
    if (this.canPunch) {
      try {
        await fsNative.trim(fd, offset, length);
      } catch (err) {
        if (!NO_PUNCH.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
        this.canPunch = false;
      }
    }
    if (!this.canPunch) {
      const zeros = Buffer.alloc(Math.min(length, ZERO_CHUNK));
      for (let done = 0; done < length; done += zeros.length) {
        const n = Math.min(zeros.length, length - done);
        await this.write(n === zeros.length ? zeros : zeros.subarray(0, n), offset + done, false);
      }
    }
    if (durable) await this.flush();
  }

  /** SEEK_DATA / SEEK_HOLE from `offset` (lseek on the thread pool; reads and writes are positional, so the file offset it moves is unused). */
  async mapStatus(offset: number, length: number): Promise<BackendExtent> {
    const fd = this.fd;
    if (fd < 0) throw closedError(this.description);
    const end = offset + Math.max(length, 1);
    if (!this.canSeekHoles) return { mapped: true, length: end - offset };
    let data: number;
    try {
      data = await pSeek(fd, offset, SEEK_DATA);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (code === 'ENXIO') return { mapped: false, length: end - offset }; // only a hole from here to EOF
      if (!NO_SEEK_HOLE.has(code)) throw err;
      this.canSeekHoles = false;
      return { mapped: true, length: end - offset };
    }
    if (data > offset) return { mapped: false, length: Math.min(data, end) - offset };
    // EOF counts as a hole, so this always answers for a data offset.
    const hole = await pSeek(fd, offset, SEEK_HOLE);
    return { mapped: true, length: Math.max(1, Math.min(hole, end) - offset) };
  }

  /** Extend the file (sparse, ftruncate) to `sizeBytes`; a file already that large is left as it is. */
  async grow(sizeBytes: number): Promise<void> {
    if (this.readOnly) throw errnoError(`${this.description} is open read-only: cannot grow it`, 'EROFS');
    if (sizeBytes < this.sizeBytes) throw errnoError(`${this.description}: cannot shrink from ${this.sizeBytes} to ${sizeBytes} bytes`, 'EINVAL');
    if (sizeBytes > this.fileSizeBytes) {
      await pFtruncate(this.fd, sizeBytes).catch((err: unknown) => {
        throw fileError(this.description, 'cannot grow', err);
      });
      this.fileSizeBytes = sizeBytes;
    }
    this.sizeBytes = sizeBytes;
  }

  /** `<lun file>.<name>`: read whole; ENOENT is "no sidecar". */
  readSidecar(name: string): Promise<Buffer | undefined> {
    return readFileIfExists(`${this.description}.${name}`);
  }

  /**
   * Atomic replace of `<lun file>.<name>`: write a temporary file in the same directory, fsync it,
   * rename it over the old one, fsync the directory. Removing unlinks and fsyncs the directory.
   */
  async writeSidecar(name: string, data: Buffer | undefined): Promise<void> {
    await replaceFile(`${this.description}.${name}`, data, true);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    const fd = this.fd;
    this.fd = -1;
    this.closing = (async () => {
      try {
        await flock(fd, 'un');
      } catch {
        // close() below releases the lock anyway
      }
      await pClose(fd);
    })();
    return this.closing;
  }
}

function writeSome(fd: number, bufs: Buffer[], position: number, cb: (err: NodeJS.ErrnoException | null, n: number) => void): void {
  if (bufs.length === 1) fs.write(fd, bufs[0]!, 0, bufs[0]!.length, position, cb);
  else fs.writev(fd, bufs, position, cb);
}

/** `bufs` without its first `n` bytes (views; the list is not modified). */
function dropBytes(bufs: readonly Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i]!.length) n -= bufs[i++]!.length;
  if (i === bufs.length) return [];
  return n === 0 ? bufs.slice(i) : [bufs[i]!.subarray(n), ...bufs.slice(i + 1)];
}

/** st_blksize as a power of two within [blockSize, 1 MiB] (FUSE may report odd values). */
function allocationUnitOf(blksize: number, blockSize: number): number {
  let unit = blockSize;
  while (unit < blksize && unit < 1024 * 1024) unit *= 2;
  return unit;
}

/**
 * Read the first block with O_DIRECT. Gluster passes O_DIRECT on to its bricks
 * (performance.strict-o-direct), whose file systems refuse I/O not aligned to their sector size:
 * a block size below it fails here, with the remedy, rather than on the first READ.
 */
async function probeDirectIo(path: string, fd: number, blockSize: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => fs.read(fd, Buffer.alloc(blockSize), 0, blockSize, 0, (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw fileError(path, 'cannot read', err);
    throw errnoError(`${path}: the volume refuses ${blockSize}-byte direct I/O (its bricks have larger sectors); serve this LUN with "blockSize": 4096`, 'EINVAL', err);
  }
}

function fileError(path: string, what: string, err: unknown): NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException;
  return errnoError(`${path}: ${what}: ${e.message}`, e.code ?? 'EIO', err);
}

function closedError(path: string): NodeJS.ErrnoException {
  return errnoError(`${path}: backend is closed`, 'EBADF');
}
