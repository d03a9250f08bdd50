/**
 * Merges adjacent requests of one direction into a single vectored system call, as a block
 * layer's elevator merges adjacent bios: the requests queued while the event loop handles one
 * batch of PDUs are examined together (on the next tick), and each run of requests where one
 * starts exactly where the previous one ended (in arrival order) becomes one preadv/pwritev.
 *
 * Why: each thread-pool request costs a worker wake-up and a completion wake-up, which on a
 * 2-vCPU machine preempt the event loop (docs/benchmarks.md). A sequential stream at queue depth
 * 32 (a file copy, a backup, mkfs, `qemu-img bench`) then costs one round trip per burst instead
 * of 32. Random requests pass through one by one, as before.
 *
 * A merged request that fails or comes back short is retried as its parts, so every command gets
 * its own outcome (one bad range fails only the commands that touch it).
 */
export interface IoRequest {
  offset: number;
  bufs: readonly Buffer[];
  bytes: number;
  durable: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Carries out requests: `single` one as given, `merged` several adjacent ones at once. */
export interface IoExecutor {
  single(r: IoRequest): Promise<void>;
  /** Must reject (or resolve false) unless every byte of every request was transferred. */
  merged(offset: number, bufs: Buffer[], bytes: number, durable: boolean): Promise<boolean>;
}

/** Bounds of one merged request: buffers (Linux IOV_MAX is 1024) and bytes. */
const MAX_IOVECS = 128;
const MAX_MERGED_BYTES = 8 * 1024 * 1024;

export class RequestMerger {
  private queue: IoRequest[] = [];
  private readonly flush = (): void => this.dispatch();

  constructor(private readonly io: IoExecutor) {}

  submit(offset: number, bufs: readonly Buffer[], bytes: number, durable: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) process.nextTick(this.flush);
      this.queue.push({ offset, bufs, bytes, durable, resolve, reject });
    });
  }

  private dispatch(): void {
    const queue = this.queue;
    this.queue = [];
    let start = 0;
    while (start < queue.length) {
      let end = start + 1;
      let bytes = queue[start]!.bytes;
      let iovecs = queue[start]!.bufs.length;
      while (end < queue.length) {
        const prev = queue[end - 1]!;
        const next = queue[end]!;
        if (next.offset !== prev.offset + prev.bytes || bytes + next.bytes > MAX_MERGED_BYTES || iovecs + next.bufs.length > MAX_IOVECS) break;
        bytes += next.bytes;
        iovecs += next.bufs.length;
        end++;
      }
      if (end - start === 1) this.runSingle(queue[start]!);
      else this.runMerged(queue.slice(start, end), bytes);
      start = end;
    }
  }

  private runSingle(r: IoRequest): void {
    this.io.single(r).then(r.resolve, r.reject);
  }

  private runMerged(run: IoRequest[], bytes: number): void {
    const bufs: Buffer[] = [];
    let durable = false;
    for (const r of run) {
      for (const b of r.bufs) bufs.push(b);
      durable ||= r.durable;
    }
    this.io.merged(run[0]!.offset, bufs, bytes, durable).then(
      (complete) => {
        if (complete) for (const r of run) r.resolve();
        else for (const r of run) this.runSingle(r);
      },
      () => {
        for (const r of run) this.runSingle(r);
      },
    );
  }
}
