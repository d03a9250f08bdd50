import type { Pdu } from '../pdu/pdu.js';
import type { TaskDataStream } from './data-out-stream.js';

/** An outstanding R2T: the initiator owes us [offset, end) under `ttt` (RFC 7143 §11.8). */
export interface PendingR2T {
  ttt: number;
  end: number;
  nextOffset: number;
  nextDataSN: number;
}

/**
 * One SCSI command in flight on a session: its write data as it arrives (immediate data,
 * unsolicited Data-Out up to FirstBurstLength, then solicited Data-Out per R2T) and its
 * execution. RFC 7143 §11.3, §11.7, §11.8.
 */
export class ScsiTask {
  /** Write data buffer (EDTL bytes) once allocated; the immediate data itself when it is everything. */
  data: Buffer | null = null;
  /** BufferPool buffers this task owns (write data, the read buffer): released when the task ends. */
  readonly pooled: Buffer[] = [];
  /** Large writes: data passed to the SCSI layer as it arrives instead of `data`. */
  stream: TaskDataStream | null = null;
  /** Bytes of this task's data counted against the server's DataBudget. */
  held = 0;
  /** Set when the write data transfer failed: this sense is the task's answer, whatever the handler says. */
  transferFailure: readonly [number, number, number] | null = null;
  /** Write bytes received so far. */
  received = 0;
  /** Unsolicited Data-Out still allowed (InitialR2T=No, F bit clear on the command). */
  unsolicitedOpen = false;
  /** Upper bound on unsolicited bytes (FirstBurstLength, at most EDTL). */
  unsolicitedLimit = 0;
  unsolicitedDataSN = 0;
  readonly r2ts: PendingR2T[] = [];
  nextR2TOffset = 0;
  r2tSN = 0;
  /** 'receiving' write data, 'executing' in the SCSI layer, 'done'. */
  state: 'receiving' | 'executing' | 'done' = 'receiving';
  /** Terminated by task management or session end: no response will be sent. */
  aborted = false;
  /** Send TASK ABORTED status when aborted (SAM-5 TAS=1 for other I_T nexuses). */
  reportAborted = false;
  /** Settles when the SCSI layer has finished with the command (aborts wait for it). */
  execution: Promise<void> | null = null;

  constructor(
    readonly itt: number,
    readonly cmdSN: number,
    readonly immediate: boolean,
    readonly lun: number,
    readonly lunField: Buffer,
    readonly cdb: Buffer,
    readonly edtl: number,
    readonly isRead: boolean,
    readonly isWrite: boolean,
  ) {}

  static fromCommand(pdu: Pdu, lun: number): ScsiTask {
    let cdb = pdu.cdb;
    const ahs = pdu.ahs;
    if (ahs !== null && ahs.length >= 4 && ahs[2] === 0x01) {
      // RFC 7143 §11.2.2 Extended CDB AHS (type 1): CDB bytes beyond the first 16.
      const ahsLength = ahs.readUInt16BE(0);
      cdb = Buffer.concat([cdb, ahs.subarray(4, 3 + ahsLength)]);
    } else {
      cdb = Buffer.from(cdb); // the BHS is a view of a socket chunk; keep only 16 bytes alive
    }
    return new ScsiTask(
      pdu.itt, pdu.cmdSN, pdu.immediate, lun, Buffer.from(pdu.lunField), cdb,
      pdu.expectedDataTransferLength, pdu.readFlag, pdu.writeFlag,
    );
  }
}
