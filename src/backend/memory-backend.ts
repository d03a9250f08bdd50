import type { BlockBackend } from './block-backend.js';

export type MemoryBackendOp = 'read' | 'write' | 'flush';

/** Counters tests use to check durability behaviour. */
export interface MemoryBackendStats {
  reads: number;
  writes: number;
  /** Writes issued with durable=true (FUA or write cache disabled). */
  durableWrites: number;
  flushes: number;
}

/** A RAM-backed BlockBackend for unit tests, with injectable I/O failures. */
export class MemoryBackend implements BlockBackend {
  readonly description = 'memory';
  readonly sizeBytes: number;
  readonly data: Buffer;
  readonly stats: MemoryBackendStats = { reads: 0, writes: 0, durableWrites: 0, flushes: 0 };
  closed = false;

  private readonly failures: Record<MemoryBackendOp, string[]> = { read: [], write: [], flush: [] };
  private readonly sticky: Partial<Record<MemoryBackendOp, string>> = {};

  constructor(sizeOrData: number | Buffer) {
    this.data = typeof sizeOrData === 'number' ? Buffer.alloc(sizeOrData) : sizeOrData;
    this.sizeBytes = this.data.length;
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

  private check(op: MemoryBackendOp): Error | undefined {
    const code = this.failures[op].shift() ?? this.sticky[op];
    if (this.closed) return Object.assign(new Error('memory backend is closed'), { code: 'EBADF' });
    if (code === undefined) return undefined;
    return Object.assign(new Error(`injected ${op} failure (${code})`), { code });
  }

  async read(buf: Buffer, offset: number): Promise<void> {
    this.stats.reads++;
    const err = this.check('read');
    if (err) throw err;
    if (offset < 0 || offset + buf.length > this.sizeBytes) {
      throw Object.assign(new Error('read outside the backend'), { code: 'EINVAL' });
    }
    this.data.copy(buf, 0, offset, offset + buf.length);
  }

  async write(buf: Buffer, offset: number, durable: boolean): Promise<void> {
    this.stats.writes++;
    if (durable) this.stats.durableWrites++;
    const err = this.check('write');
    if (err) throw err;
    if (offset < 0 || offset + buf.length > this.sizeBytes) {
      throw Object.assign(new Error('write outside the backend'), { code: 'EINVAL' });
    }
    buf.copy(this.data, offset);
  }

  async flush(): Promise<void> {
    this.stats.flushes++;
    const err = this.check('flush');
    if (err) throw err;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
