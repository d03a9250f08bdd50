import { RejectReason, RESERVED_TAG } from '../pdu/opcodes.js';
import type { Pdu } from '../pdu/pdu.js';
import { dataInHeader, r2tHeader, scsiResponseHeader } from '../pdu/target-pdus.js';
import { decodeLun } from '../scsi/lun-address.js';
import { fixedSense } from '../scsi/sense.js';
import { ScsiStatus, type ScsiResponse } from '../scsi/types.js';
import type { Connection } from './connection.js';
import { ScsiTask } from './scsi-task.js';
import { TaskDataStream } from './data-out-stream.js';

/** Residual flags of SCSI Response / Data-In (RFC 7143 §11.4.5). */
const UNDERFLOW = 0x02;
const OVERFLOW = 0x04;

/** Sense key ABORTED COMMAND with the iSCSI-specific ASC/ASCQ of RFC 7143 §11.4.7.2. */
const UNEXPECTED_UNSOLICITED_DATA = [0x0b, 0x0c, 0x0c] as const;
const INCORRECT_AMOUNT_OF_DATA = [0x0b, 0x0c, 0x0d] as const;
const PROTOCOL_SERVICE_CRC_ERROR = [0x0b, 0x47, 0x05] as const;
/** ILLEGAL REQUEST, INVALID FIELD IN CDB (SPC-4). */
const INVALID_FIELD_IN_CDB = [0x05, 0x24, 0x00] as const;

/** Largest write we buffer for one command; VPD 0xB0 advertises a smaller maximum transfer. */
const MAX_WRITE_BUFFER = 32 * 1024 * 1024;

/**
 * The SCSI data path of a connection (RFC 7143 §10–11): command PDUs become tasks; write data
 * is gathered from immediate data, unsolicited and solicited Data-Out (R2T); the SCSI layer
 * executes; results go back as Data-In (status collapsed into the last one) or SCSI Response.
 */
export class CommandPath {
  /** Commands inside the SCSI layer, and who waits for that number to reach zero. */
  private executing = 0;
  /** Reads waiting for the server's DataBudget (their buffers would exceed it). */
  private readonly deferred: ScsiTask[] = [];
  private awaitingBudget = false;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly conn: Connection) {}

  onCommand(pdu: Pdu): void {
    const conn = this.conn;
    const session = conn.session!;
    if (session.target === null) {
      // Discovery sessions carry only Text, NOP and Logout (RFC 7143 §4.3).
      conn.reject(RejectReason.ProtocolError, pdu.bhs, 'SCSI command in a discovery session');
      this.releaseIfCounted(pdu.immediate);
      return;
    }
    if (session.tasks.has(pdu.itt)) {
      conn.reject(RejectReason.TaskInProgress, pdu.bhs, `ITT 0x${pdu.itt.toString(16)} already in use`);
      this.releaseIfCounted(pdu.immediate);
      return;
    }
    const task = ScsiTask.fromCommand(pdu, decodeLun(pdu.bhs, 8));
    session.tasks.set(task.itt, task);
    if (pdu.dataDigestFailed) {
      this.finishWithSense(task, PROTOCOL_SERVICE_CRC_ERROR, 'immediate data failed its digest');
      return;
    }
    const immediateData = pdu.data;
    if (immediateData.length > 0 && !task.isWrite) {
      this.finishWithSense(task, INCORRECT_AMOUNT_OF_DATA, 'immediate data on a command without the W bit');
      return;
    }
    if (task.isRead && task.isWrite) {
      // Bidirectional commands: none of the commands we implement uses them.
      this.finishWithSense(task, INVALID_FIELD_IN_CDB, 'bidirectional command');
      return;
    }
    if (!task.isWrite || task.edtl === 0) {
      this.execute(task, undefined);
      return;
    }
    const p = session.params;
    if (immediateData.length > 0 && (!p.immediateData || immediateData.length > p.firstBurstLength)) {
      this.finishWithSense(task, UNEXPECTED_UNSOLICITED_DATA, 'immediate data not allowed or beyond FirstBurstLength');
      return;
    }
    if (task.edtl > MAX_WRITE_BUFFER) {
      this.finishWithSense(task, INVALID_FIELD_IN_CDB, `write of ${task.edtl} bytes exceeds ${MAX_WRITE_BUFFER}`);
      return;
    }
    if (immediateData.length > task.edtl) {
      this.finishWithSense(task, INCORRECT_AMOUNT_OF_DATA, 'immediate data beyond the expected transfer length');
      return;
    }
    if (immediateData.length === task.edtl) {
      // Everything arrived with the command: run straight from the receive buffer.
      task.received = task.edtl;
      task.pooled.push(immediateData);
      this.hold(task, task.edtl);
      this.execute(task, immediateData);
      return;
    }
    // §11.3.1 (F bit) / §13.10: with InitialR2T=No and F=0, unsolicited Data-Out follows, up to FirstBurstLength.
    task.unsolicitedOpen = !p.initialR2T && !pdu.final;
    task.unsolicitedLimit = Math.min(p.firstBurstLength, task.edtl);
    task.nextR2TOffset = immediateData.length;
    if (task.edtl > p.firstBurstLength && session.target.device.acceptsDataOutStream(task.cdb)) {
      // Large plain writes run now and take their data burst by burst as it arrives.
      const stream = new TaskDataStream(task.edtl, (bytes) => {
        this.release(task, bytes);
        if (!task.unsolicitedOpen) this.issueR2Ts(task);
      }, conn.bufferPool);
      task.stream = stream;
      if (immediateData.length > 0) this.store(task, immediateData, 0);
      this.execute(task, undefined);
      return;
    }
    task.data = conn.bufferPool.acquire(task.edtl);
    task.pooled.push(task.data);
    this.hold(task, task.edtl);
    immediateData.copy(task.data, 0);
    conn.bufferPool.release(immediateData);
    task.received = immediateData.length;
    if (!task.unsolicitedOpen) this.issueR2Ts(task);
  }

  onDataOut(pdu: Pdu): void {
    const conn = this.conn;
    const session = conn.session!;
    const task = session.tasks.get(pdu.itt);
    const receiving = task !== undefined && (task.stream !== null ? !task.stream.failed && task.received < task.edtl : task.state === 'receiving' && task.data !== null);
    if (!receiving) {
      // Data for a task that ended (aborted, or answered early): discarded.
      conn.log.debug({ itt: pdu.itt }, 'Data-Out for no receiving task; discarded');
      conn.bufferPool.release(pdu.data);
      return;
    }
    const data = pdu.data;
    const length = data.length;
    const offset = pdu.bufferOffset;
    const ttt = pdu.targetTransferTag;
    if (ttt === RESERVED_TAG) {
      // Unsolicited data (§11.7, DataSN: counts from 0 for the unsolicited burst).
      if (!task.unsolicitedOpen) {
        this.failTask(task, pdu, UNEXPECTED_UNSOLICITED_DATA, 'unsolicited Data-Out not expected');
        return;
      }
      if (pdu.dataSN !== task.unsolicitedDataSN || offset !== task.received || offset + length > task.unsolicitedLimit) {
        this.failTask(task, pdu, INCORRECT_AMOUNT_OF_DATA, `unsolicited Data-Out DataSN ${pdu.dataSN} offset ${offset} length ${length}`);
        return;
      }
      this.store(task, data, offset);
      task.unsolicitedDataSN++;
      if (pdu.final || task.received === task.unsolicitedLimit) {
        task.unsolicitedOpen = false;
        task.nextR2TOffset = task.received;
      }
    } else {
      const r2t = task.r2ts.find((r) => r.ttt === ttt);
      if (r2t === undefined) {
        this.failTask(task, pdu, INCORRECT_AMOUNT_OF_DATA, `Data-Out with unknown TTT 0x${ttt.toString(16)}`);
        return;
      }
      // §11.7 DataSN counts per R2T from 0; DataPDUInOrder=Yes means offsets are sequential.
      if (pdu.dataSN !== r2t.nextDataSN || offset !== r2t.nextOffset || offset + length > r2t.end) {
        this.failTask(task, pdu, INCORRECT_AMOUNT_OF_DATA, `Data-Out DataSN ${pdu.dataSN} offset ${offset} length ${length} (expected DataSN ${r2t.nextDataSN} offset ${r2t.nextOffset})`);
        return;
      }
      this.store(task, data, offset);
      r2t.nextOffset += length;
      r2t.nextDataSN++;
      if (r2t.nextOffset === r2t.end) task.r2ts.splice(task.r2ts.indexOf(r2t), 1);
    }
    if (task.received === task.edtl) {
      if (task.stream === null) this.execute(task, task.data!);
      return;
    }
    if (!task.unsolicitedOpen) this.issueR2Ts(task);
  }

  /** Take write data (a BufferPool buffer, which the task now owns) for buffer offset `offset`. */
  private store(task: ScsiTask, data: Buffer, offset: number): void {
    task.received += data.length;
    if (task.stream === null) {
      data.copy(task.data!, offset);
      this.conn.bufferPool.release(data);
      return;
    }
    this.hold(task, data.length); // given back once written (TaskDataStream's onConsumed)
    task.stream.push(data);
  }

  /** Count task data against the server's DataBudget (reads: the buffer; writes: data not yet in the file). */
  private hold(task: ScsiTask, bytes: number): void {
    task.held += bytes;
    this.conn.dataBudget.take(bytes);
  }

  private release(task: ScsiTask, bytes = task.held): void {
    const n = Math.min(bytes, task.held);
    if (n === 0) return;
    task.held -= n;
    this.conn.dataBudget.give(n);
  }

  /** A Data-Out whose payload was lost (digest error, oversize): the task cannot complete correctly. */
  failTransfer(bhs: Buffer, why: 'data-digest' | 'oversize'): void {
    const session = this.conn.session;
    if (session === null) return;
    const itt = bhs.readUInt32BE(16);
    const task = session.tasks.get(itt);
    if (task === undefined || (task.state !== 'receiving' && task.stream === null)) return;
    this.finishWithSense(task, why === 'data-digest' ? PROTOCOL_SERVICE_CRC_ERROR : INCORRECT_AMOUNT_OF_DATA, `write data lost (${why})`);
  }

  /**
   * §11.8: keep up to MaxOutstandingR2T solicitations of at most MaxBurstLength each. A streamed
   * write solicits only while less than two bursts wait for the SCSI layer (bounded memory).
   */
  private issueR2Ts(task: ScsiTask): void {
    const session = this.conn.session;
    if (session === null || task.aborted || task.transferFailure !== null || task.state === 'done') return;
    const p = session.params;
    const stream = task.stream;
    while (task.r2ts.length < p.maxOutstandingR2T && task.nextR2TOffset < task.edtl) {
      if (stream !== null && task.nextR2TOffset - stream.delivered >= 2 * p.maxBurstLength) return;
      const offset = task.nextR2TOffset;
      const length = Math.min(p.maxBurstLength, task.edtl - offset);
      const ttt = this.conn.allocateTtt();
      task.r2ts.push({ ttt, end: offset + length, nextOffset: offset, nextDataSN: 0 });
      task.nextR2TOffset += length;
      this.conn.send(r2tHeader(task.itt, task.lunField, ttt, task.r2tSN++, offset, length));
    }
  }

  private failTask(task: ScsiTask, pdu: Pdu, sense: readonly [number, number, number], why: string): void {
    this.conn.bufferPool.release(pdu.data);
    this.conn.reject(RejectReason.ProtocolError, pdu.bhs, why);
    this.finishWithSense(task, sense, why);
  }

  private finishWithSense(task: ScsiTask, sense: readonly [number, number, number], why: string): void {
    this.conn.log.warn({ itt: task.itt, why }, 'command terminated');
    if (task.stream !== null) {
      // The handler is already running: stop its data; it answers with this sense when it returns.
      if (task.transferFailure === null) task.transferFailure = sense;
      task.stream.fail(new Error(why));
      return;
    }
    task.state = 'done';
    this.complete(task, { status: ScsiStatus.CheckCondition, sense: fixedSense(sense[0], sense[1], sense[2]) });
  }

  private execute(task: ScsiTask, dataOut: Buffer | undefined): void {
    if (task.isRead && (this.deferred.length > 0 || (this.executing > 0 && this.conn.dataBudget.exhausted))) {
      // Wait, in order (still 'receiving', so task management can end it), until memory is given back.
      this.deferred.push(task);
      if (!this.awaitingBudget) this.runDeferred();
      return;
    }
    this.start(task, dataOut);
  }

  private start(task: ScsiTask, dataOut: Buffer | undefined): void {
    const session = this.conn.session!;
    const target = session.target!;
    task.state = 'executing';
    if (task.stream === null) task.r2ts.length = 0;
    let dataInBuffer: Buffer | undefined;
    if (task.isRead) {
      this.hold(task, task.edtl);
      const pool = this.conn.bufferPool;
      // Only a pooled buffer is worth offering: a small read (INQUIRY, MODE SENSE) makes its own.
      if (pool.pools(task.edtl)) {
        dataInBuffer = pool.acquire(task.edtl);
        task.pooled.push(dataInBuffer);
      }
    }
    this.executing++;
    const req = task.stream === null
      ? { nexus: session.nexus, lun: task.lun, cdb: task.cdb, dataOut, dataInLength: task.isRead ? task.edtl : 0, dataInBuffer }
      : { nexus: session.nexus, lun: task.lun, cdb: task.cdb, dataOutStream: task.stream, dataInLength: 0 };
    task.execution = target.device
      .execute(req)
      .then(
        (res) => this.finished(task, res),
        (err: unknown) => {
          this.conn.log.error({ err, itt: task.itt }, 'SCSI layer failed');
          this.finished(task, { status: ScsiStatus.CheckCondition, sense: fixedSense(0x04, 0x44, 0x00) });
        },
      );
  }

  private finished(task: ScsiTask, res: ScsiResponse): void {
    if (task.transferFailure !== null) {
      const [key, asc, ascq] = task.transferFailure;
      res = { status: ScsiStatus.CheckCondition, sense: fixedSense(key, asc, ascq) };
    }
    try {
      this.complete(task, res);
    } finally {
      --this.executing;
      if (this.deferred.length > 0 && !this.awaitingBudget) this.runDeferred();
      if (this.executing === 0 && this.drainWaiters.length > 0) {
        for (const resolve of this.drainWaiters.splice(0)) resolve();
      }
    }
  }

  /** Send the outcome of a task (RFC 7143 §11.4, §11.7) and retire it. */
  private complete(task: ScsiTask, res: ScsiResponse): void {
    const conn = this.conn;
    const session = conn.session!;
    task.state = 'done';
    task.stream?.handlerDone(); // complete() runs once the SCSI layer has answered
    task.data = null;
    this.release(task);
    if (session.tasks.get(task.itt) === task) session.tasks.delete(task.itt);
    if (task.aborted) {
      this.releasePooled(task);
      this.releaseIfCounted(task.immediate);
      if (task.reportAborted) {
        conn.send(scsiResponseHeader(task.itt, ScsiStatus.TaskAborted, 0, 0), undefined, true);
      }
      return;
    }
    this.releaseIfCounted(task.immediate);
    const edtl = task.edtl;
    const data = res.data;
    const available = data === undefined ? 0 : data.length;
    const produced = res.transferLength ?? available;
    let residualFlags = 0;
    let residual = 0;
    if (task.isRead) {
      if (produced < edtl) { residualFlags = UNDERFLOW; residual = edtl - produced; }
      else if (produced > edtl) { residualFlags = OVERFLOW; residual = produced - edtl; }
    } else if (task.isWrite || task.edtl === 0) {
      // §11.4.5.1: compare what the CDB asked to transfer with what the initiator announced.
      const needed = res.transferLength ?? (task.isWrite ? edtl : available);
      if (needed > edtl) { residualFlags = OVERFLOW; residual = needed - edtl; }
      else if (needed < edtl) { residualFlags = UNDERFLOW; residual = edtl - needed; }
    }
    const sendLength = task.isRead ? Math.min(available, edtl) : 0;
    const good = res.status === ScsiStatus.Good && res.sense === undefined;
    if (sendLength > 0) {
      // The data may be (a view of) the task's read buffer: it goes back to the pool once sent.
      this.sendDataIn(task, data!, sendLength, good ? { status: res.status, residualFlags, residual } : null, () => this.releasePooled(task));
      if (good) return;
    } else {
      this.releasePooled(task);
    }
    let senseSegment: Buffer | undefined;
    if (res.sense !== undefined) {
      // §11.4.7: SenseLength (2 bytes) then the sense data.
      senseSegment = Buffer.allocUnsafe(2 + res.sense.length);
      senseSegment.writeUInt16BE(res.sense.length, 0);
      res.sense.copy(senseSegment, 2);
    }
    conn.send(scsiResponseHeader(task.itt, res.status, residualFlags, residual), senseSegment, true);
  }

  /**
   * Data-In PDUs of at most the initiator's MaxRecvDataSegmentLength, sequences of at most
   * MaxBurstLength (F bit at each sequence end), status in the last PDU when given (§11.7).
   */
  private sendDataIn(
    task: ScsiTask, data: Buffer, length: number,
    status: { status: number; residualFlags: number; residual: number } | null,
    onWritten: () => void,
  ): void {
    const p = this.conn.session!.params;
    const maxSegment = p.initiatorMaxRecvDataSegmentLength;
    const maxBurst = p.maxBurstLength;
    let offset = 0;
    let dataSN = 0;
    let burstLeft = maxBurst;
    while (offset < length) {
      const seg = Math.min(maxSegment, length - offset, burstLeft);
      const last = offset + seg === length;
      burstLeft -= seg;
      const endOfBurst = last || burstLeft === 0;
      const header = dataInHeader(task.itt, task.lunField, dataSN++, offset, endOfBurst, last ? status : null);
      this.conn.send(header, data.subarray(offset, offset + seg), last && status !== null, last ? onWritten : undefined);
      offset += seg;
      if (burstLeft === 0) burstLeft = maxBurst;
    }
  }

  /** The task's pool buffers are no longer read by anyone (SCSI layer done, data sent). */
  private releasePooled(task: ScsiTask): void {
    for (const b of task.pooled) this.conn.bufferPool.release(b);
    task.pooled.length = 0;
  }

  private releaseIfCounted(immediate: boolean): void {
    if (!immediate) this.conn.session!.releaseCredit();
  }

  private runDeferred(): void {
    while (this.deferred.length > 0 && !this.conn.isClosed) {
      if (this.executing > 0 && this.conn.dataBudget.exhausted) {
        if (!this.awaitingBudget) {
          this.awaitingBudget = true;
          this.conn.dataBudget.whenAvailable(() => {
            this.awaitingBudget = false;
            this.runDeferred();
          });
        }
        return;
      }
      const task = this.deferred.shift()!;
      if (task.state === 'receiving' && !task.aborted) this.start(task, undefined);
    }
  }

  /** Resolves once every command handed to the SCSI layer has finished. */
  drain(): Promise<void> {
    if (this.executing === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Terminate tasks (task management, session end). Their responses are suppressed (or TASK
   * ABORTED when `report`); resolves once none of them is still running in the SCSI layer.
   */
  async abort(tasks: ScsiTask[], report: boolean): Promise<void> {
    const running: Promise<void>[] = [];
    const session = this.conn.session;
    for (const task of tasks) {
      task.aborted = true;
      task.reportAborted = report && !this.conn.isClosed;
      if (task.state === 'receiving') {
        task.state = 'done';
        task.data = null;
        this.release(task);
        this.releasePooled(task);
        if (session !== null && session.tasks.get(task.itt) === task) session.tasks.delete(task.itt);
        this.releaseIfCounted(task.immediate);
        if (task.reportAborted) this.conn.send(scsiResponseHeader(task.itt, ScsiStatus.TaskAborted, 0, 0), undefined, true);
      } else if (task.execution !== null) {
        task.stream?.fail(new Error('task aborted'));
        running.push(task.execution);
      }
    }
    await Promise.allSettled(running);
  }
}
