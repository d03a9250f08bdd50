import type { BufferPool } from '../pdu/buffer-pool.js';
import type { DataOutStream } from '../scsi/types.js';

/**
 * Write data of one task handed to the SCSI layer as it arrives (RFC 7143 §10.7: immediate
 * data, unsolicited Data-Out, then R2T bursts). The transport pushes pieces in buffer-offset
 * order; the command handler pulls them with `next()`. `onConsumed` lets the transport ask for
 * more (R2T) and give back its memory budget only as the handler gets data written, so a task
 * holds about one burst of data at a time and written-but-unfinished data stays counted.
 *
 * The pushed buffers come from the server's BufferPool; the stream gives them back once the
 * handler is done with them: a batch when the handler asks for the next one (it has written it),
 * the last batch when the transport calls `handlerDone`, never-delivered data on failure.
 */
export class TaskDataStream implements DataOutStream {
  /** Buffers pushed and not yet taken; `next()` hands them all over at once (one pwritev). */
  private queue: Buffer[] = [];
  /** The batch the handler is working on, and its size. */
  private handedOut: Buffer[] = [];
  private handedOutBytes = 0;
  /** Bytes pushed but not yet taken by the handler. */
  private queuedBytes = 0;
  /** Bytes taken by the handler. */
  delivered = 0;
  private waiter: { resolve: (b: Buffer[] | null) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(
    readonly length: number,
    /** Called when the handler is done with data (with its size) or waits for more (0). */
    private readonly onConsumed: (bytes: number) => void,
    private readonly pool: BufferPool,
  ) {}

  get failed(): boolean {
    return this.failure !== null;
  }

  /** The next piece of the data, in order. */
  push(piece: Buffer): void {
    if (this.failure !== null) {
      this.pool.release(piece);
      return;
    }
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      this.delivered += piece.length;
      this.handedOut = [piece];
      this.handedOutBytes = piece.length;
      w.resolve(this.handedOut);
      return;
    }
    this.queue.push(piece);
    this.queuedBytes += piece.length;
  }

  /**
   * The handler has returned: the last batch it took is free — or, with `pinned` (a write of it was
   * given up on and may still read it), dropped rather than reused.
   */
  handlerDone(pinned = false): void {
    this.releaseHandedOut(pinned);
  }

  private releaseHandedOut(pinned = false): void {
    if (this.handedOut.length === 0) return;
    if (!pinned) for (const b of this.handedOut) this.pool.release(b);
    const bytes = this.handedOutBytes;
    this.handedOut = [];
    this.handedOutBytes = 0;
    this.onConsumed(bytes);
  }

  /** The transfer cannot complete: the handler's next (or pending) `next()` rejects. */
  fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    for (const b of this.queue) this.pool.release(b);
    this.queue = [];
    this.queuedBytes = 0;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(error);
  }

  next(): Promise<Buffer[] | null> {
    if (this.failure !== null) return Promise.reject(this.failure);
    this.releaseHandedOut(); // written by now: the handler asks for more only after that
    if (this.queue.length > 0) {
      const pieces = this.queue;
      const bytes = this.queuedBytes;
      this.queue = [];
      this.queuedBytes = 0;
      this.delivered += bytes;
      this.handedOut = pieces;
      this.handedOutBytes = bytes;
      return Promise.resolve(pieces);
    }
    if (this.delivered >= this.length) return Promise.resolve(null);
    this.onConsumed(0);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }
}
