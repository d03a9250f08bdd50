/**
 * Every call to a LUN's storage, bounded. A file on a FUSE mount whose bricks (or client) stopped
 * answering blocks a libuv thread-pool thread for as long as the hang lasts, and the pool is shared
 * by every LUN of the server. So:
 * - at most `maxInFlight` calls of one LUN are in the pool at once; the others wait here, in order,
 *   and a hung LUN holds at most that many threads;
 * - a call that has not completed `deadlineMs` after it was made rejects with ETIMEDOUT, and one
 *   whose task is aborted stops being waited for (at once while it waits here, after
 *   ABORT_GRACE_MS once it is in the pool), so task management, logout and session teardown
 *   finish while the system call is still stuck.
 * A call given up on is not over: it keeps its thread and its slot, the buffers it was given (the
 * owner is told to pin them: they must not be reused) and, for a write, its chance to land. Until
 * it settles, a later write that overlaps it waits for it (so it cannot land over newer data), and
 * a flush waits for every such write and flush (so no SYNCHRONIZE CACHE reports GOOD while a write
 * it covers is unresolved; a failure is then the inner backend's, which latches it: lost-write.ts).
 */
import type { BackendExtent, BlockBackend } from './block-backend.js';

/** The command a call is made for (the SCSI task, structurally). */
export interface CallOwner {
  readonly aborted: boolean;
  /** Calls `listener` once when the owner is aborted; the returned function stops watching. */
  whenAborted(listener: () => void): () => void;
  /** A call was given up while it still holds the owner's buffers: they must never be reused. */
  pinBuffers(): void;
}

export interface CallBounds {
  /** Calls of one backend in the thread pool at once. */
  readonly maxInFlight: number;
  /** Milliseconds after which a call that has not completed fails with ETIMEDOUT. */
  readonly deadlineMs: number;
}

/**
 * 32 calls per LUN: an initiator's usual queue depth (open-iscsi's is 32), so one LUN is served as
 * before the cap (the whole pool was 32 threads: docs/benchmarks.md measured that size); 43 s,
 * gluster-block's default io-timeout: longer than gluster's network.ping-timeout (42 s), so a
 * brick failing over stalls I/O rather than failing it.
 */
export const DEFAULT_CALL_BOUNDS: CallBounds = { maxInFlight: 32, deadlineMs: 43_000 };

/**
 * How long a call already in the pool is still awaited after its task is aborted: a healthy call
 * completes meanwhile, so an aborted write cannot land after the task management response (SAM-5
 * §7.2); a stuck one is given up.
 */
export const ABORT_GRACE_MS = 1000;

/** What a call may change, and so which calls given up on it must follow. */
type Footprint =
  | { readonly kind: 'none' }
  | { readonly kind: 'medium'; readonly start: number; readonly end: number }
  | { readonly kind: 'flush' }
  | { readonly kind: 'sidecar'; readonly name: string };

const NONE: Footprint = { kind: 'none' };
const FLUSH: Footprint = { kind: 'flush' };

/** Whether `next` must wait for `earlier`, a call given up on that has not settled. */
function follows(next: Footprint, earlier: Footprint): boolean {
  switch (next.kind) {
    case 'medium':
      return earlier.kind === 'medium' && earlier.start < next.end && next.start < earlier.end;
    case 'flush':
      return earlier.kind === 'medium' || earlier.kind === 'flush';
    case 'sidecar':
      return earlier.kind === 'sidecar' && earlier.name === next.name;
    default:
      return false;
  }
}

function callError(message: string, code: 'ETIMEDOUT' | 'ECANCELED'): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/**
 * `work`, or its rejection with ETIMEDOUT once `deadlineMs` have passed or ECANCELED when `owner` is
 * aborted — for storage calls outside a BlockBackend (a reservation store's files). `work` goes on.
 */
export function withinDeadline<T>(work: Promise<T>, deadlineMs: number, owner?: Pick<CallOwner, 'aborted' | 'whenAborted'>): Promise<T> {
  if (owner?.aborted === true) return Promise.reject(callError('task aborted', 'ECANCELED'));
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => done(() => reject(callError(`no answer from the storage within ${deadlineMs} ms`, 'ETIMEDOUT'))), deadlineMs);
    const stopWatching = owner?.whenAborted(() => done(() => reject(callError('task aborted', 'ECANCELED'))));
    let settled = false;
    const done = (report: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stopWatching?.();
      report();
    };
    work.then((v) => done(() => resolve(v)), (err: unknown) => done(() => reject(err)));
  });
}

interface Call {
  readonly madeAt: number;
  readonly footprint: Footprint;
  readonly op: () => Promise<unknown>;
  readonly owner: CallOwner | undefined;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** In the pool: settles when the system call returns, whoever still waits for it. */
  running: Promise<unknown> | null;
  /** The caller has its answer (or was given up): nothing more is reported to it. */
  answered: boolean;
  stopWatching: (() => void) | undefined;
  graceTimer: NodeJS.Timeout | undefined;
}

/** A BlockBackend whose every call is bounded (see the top of this file). */
export class BoundedBackend implements BlockBackend {
  readonly description: string;
  readonly allocationUnit?: number;
  /** Calls made and not yet answered, oldest first (the deadline sweep stops at the first young one). */
  private readonly waiting = new Set<Call>();
  /** Calls waiting for a slot in the pool, in order. */
  private readonly queue: Call[] = [];
  /** Calls in the pool, answered or not. */
  private inFlight = 0;
  /** Calls given up on while in the pool, until they settle. */
  private readonly unresolved = new Set<Call>();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly sweepMs: number;

  constructor(readonly inner: BlockBackend, readonly bounds: CallBounds = DEFAULT_CALL_BOUNDS) {
    if (!Number.isInteger(bounds.maxInFlight) || bounds.maxInFlight < 1) throw new Error(`maxInFlight ${bounds.maxInFlight} is not a positive integer`);
    if (!(bounds.deadlineMs > 0)) throw new Error(`deadline ${bounds.deadlineMs} ms is not positive`);
    this.description = inner.description;
    if (inner.allocationUnit !== undefined) this.allocationUnit = inner.allocationUnit;
    this.sweepMs = Math.min(1000, Math.max(10, Math.floor(bounds.deadlineMs / 10)));
    if (inner.punchHole === undefined) this.punchHole = undefined;
    if (inner.mapStatus === undefined) this.mapStatus = undefined;
    if (inner.readSidecar === undefined) this.readSidecar = undefined;
    if (inner.writeSidecar === undefined) this.writeSidecar = undefined;
    if (inner.grow === undefined) this.grow = undefined;
  }

  /** The inner backend's capacity (it changes when the backend grows). */
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }

  /** Calls given up on whose system call has not returned (for logs and tests). */
  get stuckCalls(): number {
    return this.unresolved.size;
  }

  read(buf: Buffer, offset: number, owner?: CallOwner): Promise<void> {
    return this.call(() => this.inner.read(buf, offset), NONE, owner);
  }

  write(data: Buffer | readonly Buffer[], offset: number, durable: boolean, owner?: CallOwner): Promise<void> {
    let length = 0;
    for (const b of Buffer.isBuffer(data) ? [data] : data) length += b.length;
    return this.call(() => this.inner.write(data, offset, durable), { kind: 'medium', start: offset, end: offset + length }, owner);
  }

  flush(owner?: CallOwner): Promise<void> {
    return this.call(() => this.inner.flush(), FLUSH, owner);
  }

  punchHole?(offset: number, length: number, durable: boolean, owner?: CallOwner): Promise<void> {
    return this.call(() => this.inner.punchHole!(offset, length, durable), { kind: 'medium', start: offset, end: offset + length }, owner);
  }

  mapStatus?(offset: number, length: number, owner?: CallOwner): Promise<BackendExtent> {
    return this.call(() => this.inner.mapStatus!(offset, length), NONE, owner);
  }

  readSidecar?(name: string): Promise<Buffer | undefined> {
    return this.call(() => this.inner.readSidecar!(name), NONE, undefined);
  }

  writeSidecar?(name: string, data: Buffer | undefined): Promise<void> {
    return this.call(() => this.inner.writeSidecar!(name, data), { kind: 'sidecar', name }, undefined);
  }

  grow?(sizeBytes: number): Promise<void> {
    return this.call(() => this.inner.grow!(sizeBytes), FLUSH, undefined);
  }

  /** Close the inner backend, bounded like any call (a hung mount must not hold up a shutdown). */
  close(): Promise<void> {
    return this.call(() => this.inner.close(), NONE, undefined);
  }

  private call<T>(op: () => Promise<T>, footprint: Footprint, owner: CallOwner | undefined): Promise<T> {
    if (owner?.aborted === true) return Promise.reject(callError(`${this.description}: task aborted`, 'ECANCELED'));
    return new Promise<T>((resolve, reject) => {
      const c: Call = {
        madeAt: Date.now(), footprint, op, owner, resolve: resolve as (v: unknown) => void, reject,
        running: null, answered: false, stopWatching: undefined, graceTimer: undefined,
      };
      this.waiting.add(c);
      if (owner !== undefined) c.stopWatching = owner.whenAborted(() => this.ownerAborted(c));
      if (this.sweeper === null) this.startSweeping();
      const before = this.mustFollow(footprint);
      if (before.length === 0) this.enqueue(c);
      else void Promise.allSettled(before).then(() => this.enqueue(c));
    });
  }

  /** The system calls given up on that a call with `footprint` must not overtake. */
  private mustFollow(footprint: Footprint): Promise<unknown>[] {
    if (footprint.kind === 'none' || this.unresolved.size === 0) return [];
    const out: Promise<unknown>[] = [];
    for (const u of this.unresolved) if (follows(footprint, u.footprint)) out.push(u.running!);
    return out;
  }

  private enqueue(c: Call): void {
    if (c.answered) return; // given up while it waited for earlier calls: never issued
    if (this.inFlight < this.bounds.maxInFlight) this.issue(c);
    else this.queue.push(c);
  }

  private issue(c: Call): void {
    this.inFlight++;
    let running: Promise<unknown>;
    try {
      running = c.op();
    } catch (err) {
      running = Promise.reject(err);
    }
    c.running = running;
    running.then(
      (value) => this.answer(c, () => c.resolve(value)),
      (err: unknown) => this.answer(c, () => c.reject(err)),
    ).finally(() => this.settled(c));
  }

  /** The system call returned: its slot goes to the next call waiting. */
  private settled(c: Call): void {
    this.inFlight--;
    this.unresolved.delete(c);
    while (this.inFlight < this.bounds.maxInFlight && this.queue.length > 0) {
      const next = this.queue.shift()!;
      if (!next.answered) this.issue(next);
    }
  }

  private answer(c: Call, report: () => void): void {
    if (c.answered) return;
    this.finish(c);
    report();
  }

  private finish(c: Call): void {
    c.answered = true;
    this.waiting.delete(c);
    c.stopWatching?.();
    if (c.graceTimer !== undefined) clearTimeout(c.graceTimer);
    if (this.waiting.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  /**
   * Stop waiting for `c`. Not yet in the pool: it is never issued. In the pool: its buffers stay
   * pinned and, if it may change anything, later calls that must follow it wait for it.
   */
  private giveUp(c: Call, err: NodeJS.ErrnoException): void {
    if (c.answered) return;
    this.finish(c);
    if (c.running !== null) {
      c.owner?.pinBuffers();
      if (c.footprint.kind !== 'none') this.unresolved.add(c);
    } else {
      const i = this.queue.indexOf(c);
      if (i >= 0) this.queue.splice(i, 1);
    }
    c.reject(err);
  }

  private ownerAborted(c: Call): void {
    const err = callError(`${this.description}: task aborted`, 'ECANCELED');
    if (c.running === null) this.giveUp(c, err);
    else c.graceTimer ??= setTimeout(() => this.giveUp(c, err), Math.min(ABORT_GRACE_MS, this.bounds.deadlineMs));
  }

  private startSweeping(): void {
    this.sweeper = setInterval(() => {
      const expired = Date.now() - this.bounds.deadlineMs;
      for (const c of this.waiting) {
        if (c.madeAt > expired) break; // oldest first: the rest are younger
        this.giveUp(c, callError(`${this.description}: no answer from the storage within ${this.bounds.deadlineMs} ms`, 'ETIMEDOUT'));
      }
    }, this.sweepMs);
    this.sweeper.unref();
  }
}
