/**
 * Reusable buffers for PDU data segments and read data, in power-of-two size classes.
 *
 * Why: every Buffer of 4 KiB or more is its own ArrayBuffer, and V8 counts that memory towards
 * its heap limits. Allocating one per command (or per socket read) at a few hundred MB/s made V8
 * run a full mark-compact every 15–30 MB, which took a fifth of the event loop at 1 MiB QD8
 * (docs/benchmarks.md). Buffers taken from here live as long as the server and are handed out
 * again once the I/O that used them has finished.
 *
 * Returning a buffer is an optimisation, never an obligation: one that is never released is
 * simply collected. Releasing one that is still in use would hand live data to another command,
 * so callers release only where the buffer's last reader is known to be done (a completed
 * pwritev, a flushed socket write, a finished SCSI command); `release` ignores buffers it did not
 * hand out and a second release of the same one.
 */
export class BufferPool {
  /** Free buffers per class index (class i holds MIN_CLASS << i bytes). */
  private readonly free: Buffer[][] = [];
  /** ArrayBuffers created here (so foreign buffers are never adopted) and those now free. */
  private readonly owned = new WeakSet<object>();
  private readonly isFree = new WeakSet<object>();
  /** Bytes held in free lists. */
  freeBytes = 0;

  /**
   * @param maxFree bytes of free buffers kept in all (beyond that, released buffers go to the GC).
   *   The server passes its DataBudget size: data in use is bounded by that budget, so a pool of
   *   the same size never has to drop and reallocate in steady state.
   * @param maxClass largest pooled size; larger requests get a plain allocation
   */
  constructor(
    private readonly maxFree = 64 * 1024 * 1024,
    private readonly maxClass = 1024 * 1024,
  ) {
    for (let size = MIN_CLASS; size <= maxClass; size *= 2) this.free.push([]);
  }

  /** Whether buffers of `size` bytes come from the pool (others are plain allocations). */
  pools(size: number): boolean {
    return size >= MIN_CLASS && size <= this.maxClass;
  }

  /** A buffer of exactly `size` bytes (a view of a pooled one when `size` is in range); contents undefined. */
  acquire(size: number): Buffer {
    if (!this.pools(size)) return Buffer.allocUnsafe(size);
    const index = classIndex(size);
    const list = this.free[index]!;
    let buf = list.pop();
    if (buf === undefined) {
      buf = Buffer.allocUnsafeSlow(MIN_CLASS << index);
      this.owned.add(buf.buffer);
    } else {
      this.freeBytes -= buf.length;
      this.isFree.delete(buf.buffer);
    }
    return buf.length === size ? buf : buf.subarray(0, size);
  }

  /** Give back a buffer from `acquire` (or any view of one) whose last user is done with it. */
  release(buf: Buffer): void {
    const ab = buf.buffer;
    if (!this.owned.has(ab) || this.isFree.has(ab)) return;
    const size = ab.byteLength;
    if (this.freeBytes + size > this.maxFree) return; // let the GC have it
    const list = this.free[classIndex(size)]!;
    this.isFree.add(ab);
    list.push(Buffer.from(ab, 0, size));
    this.freeBytes += size;
  }
}

/** Smallest pooled size: below this, Buffer.allocUnsafe carves from Node's shared 8 KiB slab. */
const MIN_CLASS = 4096;

function classIndex(size: number): number {
  // ceil(log2(size / MIN_CLASS)) for size in [MIN_CLASS, maxClass].
  return 32 - Math.clz32(Math.ceil(size / MIN_CLASS) - 1);
}
