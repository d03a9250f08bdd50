import type { Pdu } from '../pdu/pdu.js';
import type { TransferFailure } from '../scsi/sense.js';
import type { Task } from '../scsi/task-set.js';
import type { TaskDataStream } from './data-out-stream.js';

/** An outstanding R2T: the initiator owes us [offset, end) under `ttt` (RFC 7143 §11.8). */
export interface PendingR2T {
  ttt: number;
  end: number;
  nextOffset: number;
  nextDataSN: number;
}

/** A piece of buffered write data and where it belongs in the command's buffer. */
export interface WritePiece {
  readonly offset: number;
  readonly data: Buffer;
}

/**
 * Where a task's write data goes (RFC 7143 §10.7): nowhere (no data-out), gathered piece by piece
 * (held only as it arrives) into one buffer that the command runs from once complete, or streamed
 * to the command as it arrives (large writes).
 */
export type WriteData =
  | { readonly kind: 'none' }
  | { readonly kind: 'buffered'; readonly pieces: WritePiece[] }
  | { readonly kind: 'streamed'; readonly stream: TaskDataStream };

const NO_WRITE_DATA: WriteData = { kind: 'none' };

/** The iSCSI fields of a SCSI Command PDU that a task keeps. */
export interface CommandFields {
  readonly itt: number;
  readonly cmdSN: number;
  readonly immediate: boolean;
  readonly lunField: Buffer;
  /** Expected Data Transfer Length. */
  readonly edtl: number;
  readonly isRead: boolean;
  readonly isWrite: boolean;
}

// The Command PDU's fields are the task's own (declaration merging with the class below).
export interface IscsiTask extends CommandFields {}

/**
 * One SCSI command in flight on a session: the transport's side of a SCSI `Task` — its tag, its
 * write data as it arrives (immediate data, unsolicited Data-Out up to FirstBurstLength, then
 * solicited Data-Out per R2T) and the memory it holds. RFC 7143 §11.3, §11.7, §11.8.
 */
export class IscsiTask {
  write: WriteData = NO_WRITE_DATA;
  /** Write bytes received so far. */
  received = 0;
  /** When the command PDU arrived (performance.now(), ms): its latency runs from here to its status. */
  readonly receivedAt = performance.now();
  /** When Data-Out last arrived or was last solicited: for the Data-Out timeout. */
  lastDataAt = Date.now();
  /** Unsolicited Data-Out still allowed (InitialR2T=No, F bit clear on the command). */
  unsolicitedOpen = false;
  /** Upper bound on unsolicited bytes (FirstBurstLength, at most EDTL). */
  unsolicitedLimit = 0;
  unsolicitedDataSN = 0;
  readonly r2ts: PendingR2T[] = [];
  nextR2TOffset = 0;
  r2tSN = 0;
  /** BufferPool buffers this task owns (write data, the read buffer): released when the task ends. */
  readonly pooled: Buffer[] = [];
  /** Bytes of this task's data counted against the server's DataBudget. */
  held = 0;
  /** Set when a streamed write's data transfer failed: this is the task's answer, whatever the handler says. */
  transferFailure: TransferFailure | null = null;

  constructor(
    fields: CommandFields,
    /** The command in the device's task set. */
    readonly scsi: Task,
  ) {
    Object.assign(this, fields);
  }

  get lun(): number {
    return this.scsi.lun;
  }

  /** Whether Data-Out for this task is still wanted. */
  get receiving(): boolean {
    const w = this.write;
    if (w.kind === 'streamed') return !w.stream.failed && this.received < this.edtl && this.scsi.state !== 'done';
    return w.kind === 'buffered' && this.scsi.state === 'pending';
  }

  /** Data-Out is owed by the initiator now: unsolicited data still allowed, or R2Ts outstanding (§11.8). */
  get awaitingInitiator(): boolean {
    return (this.unsolicitedOpen || this.r2ts.length > 0) && this.receiving;
  }

  /** The SCSI Command PDU's fields a task keeps, and its CDB (with an extended CDB AHS appended). */
  static fieldsOf(pdu: Pdu): { fields: CommandFields; cdb: Buffer } {
    let cdb = pdu.cdb;
    const ahs = pdu.ahs;
    if (ahs !== null && ahs.length >= 4 && ahs[2] === 0x01) {
      // RFC 7143 §11.2.2 Extended CDB AHS (type 1): CDB bytes beyond the first 16.
      const ahsLength = ahs.readUInt16BE(0);
      cdb = Buffer.concat([cdb, ahs.subarray(4, 3 + ahsLength)]);
    } else {
      cdb = Buffer.from(cdb); // the BHS is a view of a socket chunk; keep only 16 bytes alive
    }
    const fields: CommandFields = {
      itt: pdu.itt, cmdSN: pdu.cmdSN, immediate: pdu.immediate, lunField: Buffer.from(pdu.lunField),
      edtl: pdu.expectedDataTransferLength, isRead: pdu.readFlag, isWrite: pdu.writeFlag,
    };
    return { fields, cdb };
  }
}
