import type { DataOutStream } from '../scsi/types.js';

/**
 * Write data of one task handed to the SCSI layer as it arrives (RFC 7143 §10.7: immediate
 * data, unsolicited Data-Out, then R2T bursts). The transport pushes pieces in buffer-offset
 * order; the command handler pulls them with `next()`. `onConsumed` lets the transport ask for
 * more (R2T) only as the handler keeps up, so a task holds about one burst of data at a time.
 */
export class TaskDataStream implements DataOutStream {
  private readonly queue: Buffer[] = [];
  /** Bytes pushed but not yet taken by the handler. */
  queuedBytes = 0;
  /** Bytes taken by the handler. */
  delivered = 0;
  private waiter: { resolve: (b: Buffer | null) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(
    readonly length: number,
    /** Called when the handler takes data (with its size) or waits for more (0). */
    private readonly onConsumed: (bytes: number) => void,
  ) {}

  get failed(): boolean {
    return this.failure !== null;
  }

  push(piece: Buffer): void {
    if (this.failure !== null) return;
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      this.delivered += piece.length;
      this.onConsumed(piece.length);
      w.resolve(piece);
      return;
    }
    this.queue.push(piece);
    this.queuedBytes += piece.length;
  }

  /** The transfer cannot complete: the handler's next (or pending) `next()` rejects. */
  fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.queue.length = 0;
    this.queuedBytes = 0;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(error);
  }

  next(): Promise<Buffer | null> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const piece = this.queue.shift();
    if (piece !== undefined) {
      this.queuedBytes -= piece.length;
      this.delivered += piece.length;
      this.onConsumed(piece.length);
      return Promise.resolve(piece);
    }
    if (this.delivered >= this.length) return Promise.resolve(null);
    this.onConsumed(0);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }
}
