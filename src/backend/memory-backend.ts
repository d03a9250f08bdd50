import type { BackendExtent, BlockBackend } from './block-backend.js';

export type MemoryBackendOp = 'read' | 'write' | 'flush' | 'punch' | 'sidecar';

/** Counters tests use to check durability behaviour. */
export interface MemoryBackendStats {
  reads: number;
  writes: number;
  /** Writes issued with durable=true (FUA or write cache disabled). */
  durableWrites: number;
  flushes: number;
  punches: number;
  /** Sidecar writes (including removals). */
  sidecarWrites: number;
}

export interface MemoryBackendOptions {
  /** Allocation granularity in bytes (power of two); default 4096. */
  allocationUnit?: number;
}

/**
 * A RAM-backed BlockBackend for unit tests, with injectable I/O failures. It tracks allocation
 * per `allocationUnit` like a sparse file: a backend created from a size starts unallocated,
 * one created from a Buffer starts fully allocated; writes allocate, punchHole releases whole
 * units (and zeroes partial ones).
 */
export class MemoryBackend implements BlockBackend {
  readonly description = 'memory';
  readonly sizeBytes: number;
  readonly data: Buffer;
  readonly allocationUnit: number;
  readonly stats: MemoryBackendStats = { reads: 0, writes: 0, durableWrites: 0, flushes: 0, punches: 0, sidecarWrites: 0 };
  /** Sidecar files by name (persisted state a restart would read back). */
  readonly sidecars = new Map<string, Buffer>();
  closed = false;

  /** 1 = allocated, per allocation unit. */
  private readonly allocated: Uint8Array;
  private readonly failures: Record<MemoryBackendOp, string[]> = { read: [], write: [], flush: [], punch: [], sidecar: [] };
  private readonly sticky: Partial<Record<MemoryBackendOp, string>> = {};

  constructor(sizeOrData: number | Buffer, opts: MemoryBackendOptions = {}) {
    this.data = typeof sizeOrData === 'number' ? Buffer.alloc(sizeOrData) : sizeOrData;
    this.sizeBytes = this.data.length;
    const unit = opts.allocationUnit ?? 4096;
    if (!Number.isInteger(unit) || unit < 1 || (unit & (unit - 1)) !== 0) throw new Error(`allocation unit ${unit} is not a power of two`);
    this.allocationUnit = unit;
    this.allocated = new Uint8Array(Math.ceil(this.sizeBytes / unit)).fill(typeof sizeOrData === 'number' ? 0 : 1);
  }

  /** Make the next `op` reject with an Error whose code is `code` (e.g. 'EIO', 'ENOSPC'). Queues. */
  failNext(op: MemoryBackendOp, code = 'EIO'): void {
    this.failures[op].push(code);
  }

  /** Make every `op` fail with `code` until called again with null. */
  failAlways(op: MemoryBackendOp, code: string | null): void {
    if (code === null) delete this.sticky[op];
    else this.sticky[op] = code;
  }

  /** Bytes currently allocated (whole units), like st_blocks × 512 of a sparse file. */
  allocatedBytes(): number {
    let n = 0;
    for (const a of this.allocated) n += a;
    return n * this.allocationUnit;
  }

  private check(op: MemoryBackendOp): Error | undefined {
    const code = this.failures[op].shift() ?? this.sticky[op];
    if (this.closed) return Object.assign(new Error('memory backend is closed'), { code: 'EBADF' });
    if (code === undefined) return undefined;
    return Object.assign(new Error(`injected ${op} failure (${code})`), { code });
  }

  private inRange(offset: number, length: number, what: string): void {
    if (offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw Object.assign(new Error(`${what} outside the backend`), { code: 'EINVAL' });
    }
  }

  async read(buf: Buffer, offset: number): Promise<void> {
    this.stats.reads++;
    const err = this.check('read');
    if (err) throw err;
    this.inRange(offset, buf.length, 'read');
    this.data.copy(buf, 0, offset, offset + buf.length);
  }

  async write(data: Buffer | readonly Buffer[], offset: number, durable: boolean): Promise<void> {
    this.stats.writes++;
    if (durable) this.stats.durableWrites++;
    const err = this.check('write');
    if (err) throw err;
    const bufs = Buffer.isBuffer(data) ? [data] : data;
    let length = 0;
    for (const b of bufs) length += b.length;
    this.inRange(offset, length, 'write');
    let pos = offset;
    for (const b of bufs) pos += b.copy(this.data, pos);
    if (length > 0) {
      const u = this.allocationUnit;
      this.allocated.fill(1, Math.floor(offset / u), Math.ceil((offset + length) / u));
    }
  }

  async flush(): Promise<void> {
    this.stats.flushes++;
    const err = this.check('flush');
    if (err) throw err;
  }

  async punchHole(offset: number, length: number, durable: boolean): Promise<void> {
    this.stats.punches++;
    const err = this.check('punch');
    if (err) throw err;
    this.inRange(offset, length, 'punch');
    this.data.fill(0, offset, offset + length);
    const u = this.allocationUnit;
    const first = Math.ceil(offset / u);
    // The last unit counts as whole when the range reaches the end of the backend.
    const endUnit = offset + length >= this.sizeBytes ? this.allocated.length : Math.floor((offset + length) / u);
    if (endUnit > first) this.allocated.fill(0, first, endUnit);
    if (durable) this.stats.flushes++;
  }

  async mapStatus(offset: number, length: number): Promise<BackendExtent> {
    const err = this.check('read');
    if (err) throw err;
    const u = this.allocationUnit;
    const end = Math.min(offset + Math.max(length, 1), this.sizeBytes);
    let i = Math.floor(offset / u);
    const mapped = this.allocated[i] === 1;
    while (i < this.allocated.length && (i + 1) * u < end && (this.allocated[i + 1] === 1) === mapped) i++;
    return { mapped, length: Math.max(1, Math.min((i + 1) * u, end) - offset) };
  }

  async readSidecar(name: string): Promise<Buffer | undefined> {
    const err = this.check('sidecar');
    if (err) throw err;
    const b = this.sidecars.get(name);
    return b === undefined ? undefined : Buffer.from(b);
  }

  async writeSidecar(name: string, data: Buffer | undefined): Promise<void> {
    this.stats.sidecarWrites++;
    const err = this.check('sidecar');
    if (err) throw err;
    if (data === undefined) this.sidecars.delete(name);
    else this.sidecars.set(name, Buffer.from(data));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
