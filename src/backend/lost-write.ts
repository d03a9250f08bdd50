/** The latched failure of an earlier write or flush (its errno `code` kept): the medium's, not the path's. */
export class LostWriteError extends Error {
  code = 'EIO';
}

/**
 * Remembers that a file descriptor lost a write, so no later flush claims durability.
 *
 * When writeback fails, Linux marks the dirty pages clean (the data is gone) and reports the
 * error once per descriptor (errseq): the next fdatasync returns 0 although the data never reached
 * the disk. On a gluster FUSE mount, write-behind likewise reports a background write's failure
 * on a later write or flush of the descriptor, so a failed write may stand for an earlier one
 * that was already acknowledged to the initiator as cached. Either way, once a write or flush
 * has failed, nothing written before can be promised durable: every later flush and durable write
 * rejects with the first error (its code kept, so ENOSPC still maps to 27h/07h) until the file is
 * opened again — a server restart or a new owner — which starts from what is really on disk.
 */
export class LostWriteLatch {
  private lost?: LostWriteError;

  constructor(private readonly description: string) {}

  /** Record a failed write or flush (the first one is kept). */
  record(err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    // EBADF: the descriptor cannot write at all (read-only, closed); nothing was written or lost.
    if (this.lost !== undefined || e?.code === 'EBADF') return;
    const code = typeof e?.code === 'string' ? e.code : 'EIO';
    const lost = new LostWriteError(
      `${this.description}: an earlier write or flush failed (${e?.message ?? code}); its data may be lost, so nothing is reported durable until the LUN is reopened`,
      { cause: err },
    );
    lost.code = code;
    this.lost = lost;
  }

  /** The latched error, if a write was lost. */
  get error(): LostWriteError | undefined {
    return this.lost;
  }

  /** `op`, unless a write was lost before; its failure is recorded. */
  guard<T>(op: () => Promise<T>): Promise<T> {
    if (this.lost) return Promise.reject(this.lost);
    return op().catch((err: unknown) => {
      this.record(err);
      throw err;
    });
  }

  /** Record the failure of `op` (a plain write), letting it run whatever was lost before. */
  watch<T>(op: Promise<T>): Promise<T> {
    return op.catch((err: unknown) => {
      this.record(err);
      throw err;
    });
  }
}
