/**
 * Block storage behind a logical unit. Offsets and lengths are in bytes; the SCSI layer
 * converts LBAs and guarantees every request lies inside [0, sizeBytes).
 *
 * Implementations reject with an Error carrying `code` (the errno name, e.g. 'EIO', 'ENOSPC')
 * when the I/O fails; they never report success for data that was not transferred.
 */
export interface BlockBackend {
  /** Human-readable location (file path or "memory"), for logs. */
  readonly description: string;
  /** Capacity in bytes (a multiple of the LU block size). */
  readonly sizeBytes: number;
  /** Fill `buf` completely with the bytes at `offset`. */
  read(buf: Buffer, offset: number): Promise<void>;
  /** Write all of `buf` at `offset`. With `durable`, resolve only once the data is on stable storage. */
  write(buf: Buffer, offset: number, durable: boolean): Promise<void>;
  /** Make every completed write durable (fdatasync). */
  flush(): Promise<void>;
  /** Release the file (and its lock). Idempotent. */
  close(): Promise<void>;
}
