import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { BlockBackend } from './block-backend.js';

/** The part of fs-ext (CommonJS, no bundled types) this module uses. */
interface FsExt {
  flock(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un', cb: (err: NodeJS.ErrnoException | null) => void): void;
}
const fsExt = createRequire(import.meta.url)('fs-ext') as FsExt;

export interface FileBackendOptions {
  path: string;
  /** Configured size: the file is created at this size, or grown to it (never shrunk). */
  sizeBytes?: number;
  readOnly: boolean;
  blockSize: number;
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
function pFlock(fd: number, flags: 'exnb' | 'un'): Promise<void> {
  return new Promise((resolve, reject) => fsExt.flock(fd, flags, (err) => (err ? reject(err) : resolve())));
}

/**
 * A LUN backed by a regular file (typically on a GlusterFS FUSE mount), accessed with positional
 * callback-style fs.read/fs.write on a raw fd (cheaper than FileHandle on the hot path).
 *
 * The file is locked with an exclusive flock for the lifetime of the backend so two servers
 * (or two LUN definitions) never serve the same file.
 */
export class FileBackend implements BlockBackend {
  readonly description: string;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** True when open() created the file. */
  readonly created: boolean;
  /** Previous file size when open() grew the file to the configured size. */
  readonly grewFrom?: number;
  /** Size of the file on disk (sizeBytes is this rounded down to a whole block). */
  readonly fileSizeBytes: number;

  private fd: number;
  private closing?: Promise<void>;

  private constructor(
    path: string,
    fd: number,
    sizeBytes: number,
    fileSizeBytes: number,
    readOnly: boolean,
    created: boolean,
    grewFrom: number | undefined,
  ) {
    this.description = path;
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
    const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL } = fs.constants;

    let fd: number;
    let created = false;
    try {
      fd = await pOpen(path, readOnly ? O_RDONLY : O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fileError(path, 'cannot open', err);
      if (readOnly) throw errnoError(`${path} does not exist (a read-only LUN file is never created)`, 'ENOENT', err);
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
        await pFlock(fd, 'exnb');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EWOULDBLOCK' || code === 'EAGAIN') {
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
      return new FileBackend(path, fd, capacity, fileSize, readOnly, created, grewFrom);
    } catch (err) {
      await pClose(fd).catch(() => undefined); // closing the fd also drops the lock
      throw err;
    }
  }

  read(buf: Buffer, offset: number): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return Promise.reject(closedError(this.description));
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
        fs.read(fd, buf, done, total - done, offset + done, step);
      };
      if (total === 0) return resolve();
      fs.read(fd, buf, 0, total, offset, step);
    });
  }

  write(buf: Buffer, offset: number, durable: boolean): Promise<void> {
    const fd = this.fd;
    if (fd < 0) return Promise.reject(closedError(this.description));
    return new Promise((resolve, reject) => {
      const total = buf.length;
      let done = 0;
      const finish = (): void => {
        if (!durable) return resolve();
        fs.fdatasync(fd, (err) => (err ? reject(err) : resolve()));
      };
      const step = (err: NodeJS.ErrnoException | null, n: number): void => {
        if (err) return reject(err);
        if (n === 0) return reject(errnoError(`${this.description}: write made no progress`, 'EIO'));
        done += n;
        if (done >= total) return finish();
        fs.write(fd, buf, done, total - done, offset + done, step);
      };
      if (total === 0) return finish();
      fs.write(fd, buf, 0, total, offset, step);
    });
  }

  flush(): Promise<void> {
    if (this.fd < 0) return Promise.reject(closedError(this.description));
    return pFdatasync(this.fd);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    const fd = this.fd;
    this.fd = -1;
    this.closing = (async () => {
      try {
        await pFlock(fd, 'un');
      } catch {
        // close() below releases the lock anyway
      }
      await pClose(fd);
    })();
    return this.closing;
  }
}

function fileError(path: string, what: string, err: unknown): NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException;
  return errnoError(`${path}: ${what}: ${e.message}`, e.code ?? 'EIO', err);
}

function closedError(path: string): NodeJS.ErrnoException {
  return errnoError(`${path}: backend is closed`, 'EBADF');
}
