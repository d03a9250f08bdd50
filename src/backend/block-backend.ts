/**
 * Block storage behind a logical unit. Offsets and lengths are in bytes; the SCSI layer
 * converts LBAs and guarantees every request lies inside [0, sizeBytes).
 *
 * Implementations reject with an Error carrying `code` (the errno name, e.g. 'EIO', 'ENOSPC')
 * when the I/O fails; they never report success for data that was not transferred. 'ENOTOWNER':
 * this server does not serve the medium (now): the command may succeed through another server.
 *
 * The optional members are capabilities: a logical unit reports thin provisioning only when the
 * backend can deallocate (`punchHole` + `mapStatus`), and persistent reservations survive a
 * restart (APTPL) only when it can keep sidecar state (`readSidecar` + `writeSidecar`).
 */
export interface BlockBackend {
  /** Human-readable location (file path or "memory"), for logs. */
  readonly description: string;
  /** Capacity in bytes (a multiple of the LU block size). */
  readonly sizeBytes: number;
  /**
   * Granularity, in bytes, at which storage is allocated and released (the file system block);
   * a power of two. Deallocating less than one aligned unit only zeroes the bytes.
   */
  readonly allocationUnit?: number;
  /** Fill `buf` completely with the bytes at `offset`. */
  read(buf: Buffer, offset: number): Promise<void>;
  /**
   * Write all of `data` (one buffer, or several written back to back) at `offset`. With
   * `durable`, resolve only once the data is on stable storage.
   */
  write(data: Buffer | readonly Buffer[], offset: number, durable: boolean): Promise<void>;
  /** Make every completed write durable (fdatasync). */
  flush(): Promise<void>;
  /** Release the file (and its lock). Idempotent. */
  close(): Promise<void>;
  /**
   * Deallocate [offset, offset + length): afterwards the range reads as zeros. Whole allocation
   * units inside it are released (a hole is punched, the file size is kept); partial units at
   * the edges are zeroed and stay allocated. With `durable`, resolve only once the change is on
   * stable storage.
   */
  punchHole?(offset: number, length: number, durable: boolean): Promise<void>;
  /**
   * Allocation state at `offset`: whether the bytes there are backed by storage (`mapped`) or a
   * hole, and for how many bytes from `offset` that state lasts (at least 1, at most `length`).
   */
  mapStatus?(offset: number, length: number): Promise<BackendExtent>;
  /** Contents of the sidecar file `name` kept next to the storage (e.g. "pr.json"), or undefined if none. */
  readSidecar?(name: string): Promise<Buffer | undefined>;
  /**
   * Replace the sidecar `name` atomically and durably (undefined removes it): after a crash it
   * holds either the old or the new contents, never a mix.
   */
  writeSidecar?(name: string, data: Buffer | undefined): Promise<void>;
  /**
   * Grow the storage to `sizeBytes` (a multiple of the block size, not below the current size);
   * `sizeBytes` reads the new capacity once it resolves. Never shrinks.
   */
  grow?(sizeBytes: number): Promise<void>;
}

/** One run of bytes with the same allocation state (BlockBackend.mapStatus). */
export interface BackendExtent {
  mapped: boolean;
  length: number;
}
