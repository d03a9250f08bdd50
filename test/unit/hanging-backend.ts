// A backend whose storage can stop answering, for the unit tests of bounded calls (not a test file itself).
import type { BackendExtent, BlockBackend } from '../../src/backend/block-backend.js';
import { MemoryBackend } from '../../src/backend/memory-backend.js';

/**
 * A MemoryBackend behind a switch: while `hung`, every call waits (as a system call on a FUSE mount
 * whose client is stopped) and is carried out, in order, on `resume()`. `issued` counts the calls
 * that reached the storage; `waiting` those that wait in it now.
 */
export class HangingBackend implements BlockBackend {
  readonly mem: MemoryBackend;
  readonly description = 'hanging memory';
  readonly sizeBytes: number;
  readonly allocationUnit: number;
  hung = false;
  issued = 0;
  private parked: Array<() => void> = [];

  constructor(size: number) {
    this.mem = new MemoryBackend(size);
    this.sizeBytes = size;
    this.allocationUnit = this.mem.allocationUnit;
  }

  get waiting(): number {
    return this.parked.length;
  }

  /** Carry out the calls that waited (in order) and answer the next ones at once. */
  resume(): void {
    this.hung = false;
    for (const go of this.parked.splice(0)) go();
  }

  private gate<T>(op: () => Promise<T>): Promise<T> {
    this.issued++;
    if (!this.hung) return op();
    return new Promise<T>((resolve, reject) => this.parked.push(() => op().then(resolve, reject)));
  }

  read(buf: Buffer, offset: number): Promise<void> {
    return this.gate(() => this.mem.read(buf, offset));
  }
  write(data: Buffer | readonly Buffer[], offset: number, durable: boolean): Promise<void> {
    return this.gate(() => this.mem.write(data, offset, durable));
  }
  flush(): Promise<void> {
    return this.gate(() => this.mem.flush());
  }
  punchHole(offset: number, length: number, durable: boolean): Promise<void> {
    return this.gate(() => this.mem.punchHole(offset, length, durable));
  }
  mapStatus(offset: number, length: number): Promise<BackendExtent> {
    return this.gate(() => this.mem.mapStatus(offset, length));
  }
  close(): Promise<void> {
    return this.gate(() => this.mem.close());
  }
}

/** `p`, or 'pending' if it has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);
}

/** The error code `p` rejects with ('resolved' if it does not). */
export function rejection(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'resolved', (e: unknown) => String((e as { code?: unknown }).code));
}
