import type { ItNexus } from './nexus.js';

/** SAM-5 status codes (§5.3). */
export const enum ScsiStatus {
  Good = 0x00,
  CheckCondition = 0x02,
  ConditionMet = 0x04,
  Busy = 0x08,
  ReservationConflict = 0x18,
  TaskSetFull = 0x28,
  AcaActive = 0x30,
  TaskAborted = 0x40,
}

/** One SCSI command as handed over by a transport (SAM-5 "Execute Command"). */
export interface ScsiRequest {
  readonly nexus: ItNexus;
  /** Logical unit number (already decoded from the 8-byte LUN field). */
  readonly lun: number;
  /** CDB; may be longer than 16 bytes when an extended CDB AHS was present. */
  readonly cdb: Buffer;
  /** Write data (everything the initiator sent, at most the expected transfer length). */
  readonly dataOut?: Buffer;
  /**
   * Write data still arriving, for large writes of commands that accept it (see
   * `ScsiDevice.acceptsDataOutStream`): the handler pulls it piece by piece, so a huge WRITE is
   * written burst by burst and never held in memory whole. Exclusive with `dataOut`.
   */
  readonly dataOutStream?: DataOutStream;
  /** Expected data-in length the transport will accept (iSCSI EDTL for reads); longer data is truncated by the transport. */
  readonly dataInLength: number;
  /**
   * A buffer of `dataInLength` bytes the transport offers for the data-in (a reusable one): a
   * handler may read into it and return (a view of) it as `data`. It belongs to the transport
   * again once the handler has answered.
   */
  readonly dataInBuffer?: Buffer;
  /** The task the request runs as: handlers pass it to what they wait for (range locks, backend calls). */
  readonly task?: TaskHandle;
}

/** Whether task management has aborted a task, and a way to hear of it (SAM-5 §7). */
export interface AbortWatch {
  readonly aborted: boolean;
  /** Calls `listener` once when the task is aborted; the returned function stops watching. */
  whenAborted(listener: () => void): () => void;
}

/**
 * The task a request runs as, as its handler sees it: what waits inside the device server stops
 * when it is aborted, and a backend call given up on (deadline, abort) pins the request's buffers,
 * which its system call may still read or fill (the transport then never reuses them).
 */
export interface TaskHandle extends AbortWatch {
  pinBuffers(): void;
}

export interface ScsiResponse {
  status: ScsiStatus;
  /** Fixed-format sense data (SPC-4 §4.5.3) when status is CHECK CONDITION. */
  sense?: Buffer;
  /** Data-in; the transport sends at most dataInLength bytes and reports residuals. */
  data?: Buffer;
  /**
   * Bytes the CDB asked to transfer when that differs from `data.length` (a read cut short to
   * the transport's dataInLength): residual overflow is computed from it.
   */
  transferLength?: number;
}

/** SAM-5 §7 task management functions a transport may request. */
export const enum TaskManagementFunction {
  AbortTask = 1,
  AbortTaskSet = 2,
  ClearAca = 3,
  ClearTaskSet = 4,
  LogicalUnitReset = 5,
  TargetWarmReset = 6,
  TargetColdReset = 7,
}

/** Write data delivered in order as the transport receives it. */
export interface DataOutStream {
  /** Bytes the initiator will send in all (iSCSI EDTL). */
  readonly length: number;
  /**
   * The data that arrived since the last call (at least one byte, in order, as the buffers it
   * came in), or null once `length` bytes have been delivered. Rejects when the transfer failed
   * (protocol error, digest error, task aborted): the handler stops writing. The buffers are
   * the transport's again at the following call or when the handler returns: write them first.
   */
  next(): Promise<Buffer[] | null>;
}
