/**
 * Logical block range locks for one logical unit.
 *
 * Plain writes take a *shared* lock on their range: they may run concurrently with each other
 * (SAM-5 SIMPLE tasks have no ordering), but not with an *exclusive* holder of an overlapping
 * range. Read-modify-write commands (COMPARE AND WRITE, ORWRITE, …) take the exclusive lock, so
 * no other write can land between their read and their write: COMPARE AND WRITE is atomic
 * against every other write to the LU (SBC-3 §5.2).
 *
 * Grants are FIFO among conflicting requests, so a waiting exclusive request is not starved by a
 * stream of shared ones (a shared request that overlaps a waiting exclusive one queues behind it).
 * The uncontended shared path allocates one small object and never awaits.
 */
import type { AbortWatch } from './types.js';

export type Release = () => void;

/** A lock request given up because its task was aborted while it waited. */
export class LockWaitAborted extends Error {
  constructor() {
    super('task aborted while waiting for a range lock');
  }
}

interface Request {
  readonly start: number;
  readonly end: number; // exclusive
  readonly exclusive: boolean;
  grant?: () => void;
}

function conflicts(a: Request, b: Request): boolean {
  return (a.exclusive || b.exclusive) && a.start < b.end && b.start < a.end;
}

export class RangeLock {
  private readonly held = new Set<Request>();
  private readonly waiting: Request[] = [];
  /** Exclusive requests held or waiting: 0 lets shared requests skip the conflict scan. */
  private exclusives = 0;

  /**
   * Lock [start, start + count) (units are the caller's, e.g. LBAs); count 0 locks nothing.
   * With `abort`, a request still waiting when its task is aborted leaves the queue at once and
   * rejects with LockWaitAborted: SAM-5 §7.2 (ABORT TASK) ends a task that has not started its
   * work, and task management waits for the task to leave the device server.
   */
  acquire(start: number, count: number, exclusive: boolean, abort?: AbortWatch): Release | Promise<Release> {
    const req: Request = { start, end: start + Math.max(count, 0), exclusive };
    if (req.end === req.start) return noop;
    if (abort?.aborted === true) return Promise.reject(new LockWaitAborted());
    if (exclusive) this.exclusives++;
    if (this.exclusives === 0 || this.grantable(req, this.waiting.length)) {
      this.held.add(req);
      return () => this.release(req);
    }
    return new Promise<Release>((resolve, reject) => {
      const stopWatching = abort?.whenAborted(() => {
        const i = this.waiting.indexOf(req);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        if (req.exclusive) this.exclusives--;
        this.grantWaiters(); // requests queued behind this one may now go
        reject(new LockWaitAborted());
      });
      req.grant = () => {
        stopWatching?.();
        resolve(() => this.release(req));
      };
      this.waiting.push(req);
    });
  }

  /** Run `fn` holding the lock. */
  async with<T>(start: number, count: number, exclusive: boolean, fn: () => Promise<T>, abort?: AbortWatch): Promise<T> {
    const release = await this.acquire(start, count, exclusive, abort);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Held plus waiting requests (for tests). */
  get size(): number {
    return this.held.size + this.waiting.length;
  }

  /** `req` conflicts with nothing held and with none of the first `before` waiters. */
  private grantable(req: Request, before: number): boolean {
    for (const h of this.held) if (conflicts(req, h)) return false;
    for (let i = 0; i < before; i++) if (conflicts(req, this.waiting[i]!)) return false;
    return true;
  }

  private release(req: Request): void {
    if (!this.held.delete(req)) return; // released twice
    if (req.exclusive) this.exclusives--;
    this.grantWaiters();
  }

  private grantWaiters(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i]!;
      if (this.grantable(w, i)) {
        this.waiting.splice(i, 1);
        this.held.add(w);
        w.grant!();
      } else {
        i++;
      }
    }
  }
}

function noop(): void {}
