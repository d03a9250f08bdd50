import type { BackendExtent } from '../backend/block-backend.js';
import type { FileBackend } from '../backend/file-backend.js';
import { LostWriteError } from '../backend/lost-write.js';

/** Linux's EBADFD, "file descriptor in bad state" (absent from os.constants.errno). */
const EBADFD = 77;

/**
 * The descriptor no longer reaches the volume through this node's gluster client:
 * - ENOTCONN: the client lost every brick, or is gone (killed; the mount then needs remounting);
 * - EBADFD (77; libuv has no name for it, so Node reports code 'UNKNOWN'): with
 *   `client.strict-locks on` the client does not reopen a descriptor that held a lock once it
 *   reconnects to restarted or reachable-again bricks — the lock is gone, and so is the descriptor.
 */
function pathLoss(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return e?.code === 'ENOTCONN' || e?.errno === -EBADFD;
}

/** A media command reached a node that does not own the LU (sense.ts: NOT READY 04h/0Ah). */
export class NotOwnerError extends Error {
  readonly code = 'ENOTOWNER';
}

/**
 * The LUN file as this node holds it while it owns the LU: the media commands' way to the file.
 * It knows when media commands last came (the owner hands over implicitly only when idle), turns
 * the loss of the gluster client behind the file into a path error, and keeps a write lost
 * through one descriptor latched in the next one this node opens without another owner between.
 */
export class OwnedFile {
  private file: FileBackend | null = null;
  /** When a media command last came (0: never since the node took the LU at start-up). */
  lastMediaIo = Date.now();
  /** The file answered ENOTCONN or EBADFD (`pathLoss`), or the owner was fenced, since the last `deadForGood`. */
  private lost = false;
  /** A write lost through the last descriptor served, and its ownership's epoch. */
  private carriedLoss: { error: LostWriteError; epoch: number } | undefined;

  /** `onPathLost`: the file answered ENOTCONN or EBADFD (the owner must stop serving at once). */
  constructor(private readonly description: string, private readonly onPathLost: (err: unknown) => void) {}

  /**
   * Serve `file` as owner of `epoch`. Owned again with no other owner in between: a write lost
   * through the previous descriptor is still unaccounted for (lost-write.ts), so this one starts latched.
   */
  serve(file: FileBackend, epoch: number): void {
    if (this.carriedLoss !== undefined && epoch === this.carriedLoss.epoch + 1) file.inheritLostWrite(this.carriedLoss.error);
    this.carriedLoss = undefined;
    this.file = file;
  }

  /** Stop serving (ownership of `epoch` ends): the file, for the caller to flush and close. */
  release(epoch: number): FileBackend | null {
    const file = this.file;
    this.file = null;
    this.lost = false;
    const lost = file?.lostWriteError;
    if (lost !== undefined) this.carriedLoss = { error: lost, epoch };
    return file;
  }

  /**
   * The volume stopped answering the owner (it fenced) before any media command found the path
   * gone: the next `deadForGood` checks the descriptor all the same.
   */
  suspect(): void {
    if (this.file !== null) this.lost = true;
  }

  /**
   * Whether the file lost its path (`pathLoss`) and its descriptor is dead for good: asked once
   * the volume answers again. Without strict locks, the same gluster client back (its bricks
   * returned) serves the descriptor again; a new client (the mount was remounted) never will, nor
   * will a strict-locks client its locked descriptor (EBADFD) — and the lock is gone either way.
   */
  async deadForGood(): Promise<boolean> {
    if (!this.lost || this.file === null) return false;
    this.lost = false;
    try {
      await this.file.probe();
      return false;
    } catch (err) {
      return pathLoss(err);
    }
  }

  /** fstat on the descriptor (not media I/O): rejects when this node serves no file or its gluster client lost it. */
  async probe(): Promise<void> {
    if (this.file === null) throw new NotOwnerError(`${this.description}: this node does not own the LUN`);
    await this.file.probe().catch((err: unknown) => {
      throw this.pathLost(err);
    });
  }

  read(buf: Buffer, offset: number): Promise<void> {
    return this.guard((f) => f.read(buf, offset));
  }

  write(data: Buffer | readonly Buffer[], offset: number, durable: boolean): Promise<void> {
    return this.guard((f) => f.write(data, offset, durable));
  }

  flush(): Promise<void> {
    if (this.file === null) return Promise.resolve(); // nothing written through this node is pending
    return this.guard((f) => f.flush());
  }

  punchHole(offset: number, length: number, durable: boolean): Promise<void> {
    return this.guard((f) => f.punchHole(offset, length, durable));
  }

  mapStatus(offset: number, length: number): Promise<BackendExtent> {
    return this.guard((f) => f.mapStatus(offset, length));
  }

  /** Extend the file when this node serves it; false when it does not. */
  async grow(sizeBytes: number): Promise<boolean> {
    if (this.file === null) return false;
    await this.file.grow(sizeBytes);
    return true;
  }

  private guard<T>(op: (file: FileBackend) => Promise<T>): Promise<T> {
    const file = this.file;
    if (file === null) return Promise.reject(new NotOwnerError(`${this.description}: this node does not own the LUN`));
    this.lastMediaIo = Date.now();
    try {
      return op(file).catch((err: unknown) => {
        throw this.pathLost(err);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The file lost its path (`pathLoss`): this node's gluster client cannot show it holds the lock,
   * so it stops serving at once, and the command is answered as by a path in transition
   * (ENOTOWNER), which multipath retries through another node, instead of as a medium error the
   * file system would see. A write lost earlier (the latch) stays the medium's error.
   */
  private pathLost(err: unknown): unknown {
    if (err instanceof LostWriteError || !pathLoss(err)) return err;
    this.lost = true;
    this.onPathLost(err);
    return new NotOwnerError(`${this.description}: this node lost the volume`, { cause: err });
  }
}
