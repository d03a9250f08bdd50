import { RejectReason, RESERVED_TAG } from '../pdu/opcodes.js';
import type { Pdu } from '../pdu/pdu.js';
import { r2tHeader, scsiResponseHeader } from '../pdu/target-pdus.js';
import { failureReason, ioKind } from '../scsi/io-kind.js';
import { decodeLun } from '../scsi/lun-address.js';
import { internalTargetFailure, transferFailed, type TransferFailure } from '../scsi/sense.js';
import { ScsiStatus, type ScsiResponse } from '../scsi/types.js';
import { residualOf, sendDataIn, senseSegmentOf } from './command-response.js';
import type { BudgetAccount } from './data-budget.js';
import { TaskDataStream } from './data-out-stream.js';
import { IscsiTask } from './iscsi-task.js';
import type { SessionPort } from './session-port.js';

/** Largest write we buffer for one command; VPD 0xB0 advertises a smaller maximum transfer. */
const MAX_WRITE_BUFFER = 32 * 1024 * 1024;
/** Most read data one command can produce (the Block Limits maximum transfer): what a read is charged. */
const MAX_READ_DATA = 32 * 1024 * 1024;

/**
 * The SCSI data path of a connection (RFC 7143 §10–11): command PDUs become tasks in the
 * device's task set; write data is gathered from immediate data, unsolicited and solicited
 * Data-Out (R2T); the device server executes; results go back as Data-In (status collapsed into
 * the last one) or SCSI Response. It maps Initiator Task Tags to tasks and knows no SCSI command.
 */
export class CommandPath {
  /** Commands inside the SCSI layer, and who waits for that number to reach zero. */
  private executing = 0;
  /** Reads waiting for this session's share of the DataBudget (their buffers would exceed it). */
  private readonly deferred: IscsiTask[] = [];
  private awaitingBudget = false;
  private drainWaiters: Array<() => void> = [];
  /** Reads whose data is in the socket's queue: their memory is counted until the socket has taken it. */
  private readonly sending = new Set<IscsiTask>();
  /** This session's part of the server's DataBudget. */
  readonly account: BudgetAccount;

  constructor(private readonly port: SessionPort) {
    this.account = port.dataBudget.open();
  }

  onCommand(pdu: Pdu): void {
    const port = this.port;
    const session = port.session;
    const device = session.target?.device;
    if (device === undefined) {
      // Discovery sessions carry only Text, NOP and Logout (RFC 7143 §4.3).
      port.reject(RejectReason.ProtocolError, pdu.bhs, 'SCSI command in a discovery session');
      this.releaseIfCounted(pdu.immediate);
      return;
    }
    if (session.tasks.has(pdu.itt)) {
      port.reject(RejectReason.TaskInProgress, pdu.bhs, `ITT 0x${pdu.itt.toString(16)} already in use`);
      this.releaseIfCounted(pdu.immediate);
      return;
    }
    const { fields, cdb } = IscsiTask.fieldsOf(pdu);
    const scsi = device.createTask(session.nexus, decodeLun(pdu.bhs, 8), cdb, (report) => this.aborted(task, report));
    const task = new IscsiTask(fields, scsi);
    session.tasks.set(task.itt, task);
    if (pdu.dataDigestFailed) {
      this.endWith(task, 'data-digest-error', 'immediate data failed its digest');
      return;
    }
    const immediateData = pdu.data;
    if (immediateData.length !== pdu.dataSegmentLength) {
      // Longer than our MaxRecvDataSegmentLength: the framer skipped it (RFC 7143 §7.8 ERL 0).
      this.endWith(task, 'incorrect-amount-of-data', 'immediate data beyond MaxRecvDataSegmentLength');
      return;
    }
    if (immediateData.length > 0 && !task.isWrite) {
      this.endWith(task, 'incorrect-amount-of-data', 'immediate data on a command without the W bit');
      return;
    }
    if (task.isRead && task.isWrite) {
      this.endWith(task, 'bidirectional-command', 'bidirectional command');
      return;
    }
    if (!task.isWrite || task.edtl === 0) {
      this.execute(task, undefined);
      return;
    }
    const p = session.params;
    if (immediateData.length > 0 && (!p.immediateData || immediateData.length > p.firstBurstLength)) {
      this.endWith(task, 'unexpected-unsolicited-data', 'immediate data not allowed or beyond FirstBurstLength');
      return;
    }
    if (task.edtl > MAX_WRITE_BUFFER) {
      this.endWith(task, 'transfer-too-long', `write of ${task.edtl} bytes exceeds ${MAX_WRITE_BUFFER}`);
      return;
    }
    if (immediateData.length > task.edtl) {
      this.endWith(task, 'incorrect-amount-of-data', 'immediate data beyond the expected transfer length');
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
    task.lastDataAt = Date.now();
    // §11.3.1 (F bit) / §13.10: with InitialR2T=No and F=0, unsolicited Data-Out follows, up to FirstBurstLength.
    task.unsolicitedOpen = !p.initialR2T && !pdu.final;
    task.unsolicitedLimit = Math.min(p.firstBurstLength, task.edtl);
    task.nextR2TOffset = immediateData.length;
    if (task.edtl > p.firstBurstLength && device.acceptsDataOutStream(cdb)) {
      // Large plain writes run now and take their data burst by burst as it arrives.
      const stream = new TaskDataStream(task.edtl, (bytes) => {
        this.release(task, bytes);
        if (!task.unsolicitedOpen) this.issueR2Ts(task);
      }, port.bufferPool);
      task.write = { kind: 'streamed', stream };
      if (immediateData.length > 0) this.store(task, immediateData, 0);
      this.execute(task, undefined);
      return;
    }
    // Other commands get all of their data before they run. It is held (and counted) only as it
    // arrives, never reserved up front: a command that claims a large EDTL and sends nothing
    // holds nothing, and the Data-Out timeout ends it.
    task.write = { kind: 'buffered', pieces: [] };
    if (immediateData.length > 0) this.store(task, immediateData, 0);
    else port.bufferPool.release(immediateData);
    if (!task.unsolicitedOpen) this.issueR2Ts(task);
  }

  onDataOut(pdu: Pdu): void {
    const port = this.port;
    const task = port.session.tasks.get(pdu.itt);
    if (task === undefined || !task.receiving) {
      // Data for a task that ended (aborted, or answered early): discarded.
      port.log.debug({ itt: pdu.itt }, 'Data-Out for no receiving task; discarded');
      port.bufferPool.release(pdu.data);
      return;
    }
    const data = pdu.data;
    const length = data.length;
    const offset = pdu.bufferOffset;
    const ttt = pdu.targetTransferTag;
    if (ttt === RESERVED_TAG) {
      // Unsolicited data (§11.7, DataSN: counts from 0 for the unsolicited burst).
      if (!task.unsolicitedOpen) {
        this.failTask(task, pdu, 'unexpected-unsolicited-data', 'unsolicited Data-Out not expected');
        return;
      }
      if (pdu.dataSN !== task.unsolicitedDataSN || offset !== task.received || offset + length > task.unsolicitedLimit) {
        this.failTask(task, pdu, 'incorrect-amount-of-data', `unsolicited Data-Out DataSN ${pdu.dataSN} offset ${offset} length ${length}`);
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
        this.failTask(task, pdu, 'incorrect-amount-of-data', `Data-Out with unknown TTT 0x${ttt.toString(16)}`);
        return;
      }
      // §11.7 DataSN counts per R2T from 0; DataPDUInOrder=Yes means offsets are sequential.
      if (pdu.dataSN !== r2t.nextDataSN || offset !== r2t.nextOffset || offset + length > r2t.end) {
        this.failTask(task, pdu, 'incorrect-amount-of-data', `Data-Out DataSN ${pdu.dataSN} offset ${offset} length ${length} (expected DataSN ${r2t.nextDataSN} offset ${r2t.nextOffset})`);
        return;
      }
      this.store(task, data, offset);
      r2t.nextOffset += length;
      r2t.nextDataSN++;
      if (r2t.nextOffset === r2t.end) task.r2ts.splice(task.r2ts.indexOf(r2t), 1);
    }
    if (task.received === task.edtl) {
      if (task.write.kind === 'buffered') this.execute(task, this.assemble(task, task.write.pieces));
      return;
    }
    if (!task.unsolicitedOpen) this.issueR2Ts(task);
  }

  /** Take write data (a BufferPool buffer, which the task now owns) for buffer offset `offset`. */
  private store(task: IscsiTask, data: Buffer, offset: number): void {
    task.received += data.length;
    task.lastDataAt = Date.now();
    const w = task.write;
    if (w.kind === 'none') {
      this.port.bufferPool.release(data);
      return;
    }
    this.hold(task, data.length); // streamed: given back once written (TaskDataStream's onConsumed)
    if (w.kind === 'buffered') {
      w.pieces.push({ offset, data });
      task.pooled.push(data);
    } else {
      w.stream.push(data);
    }
  }

  /** The complete write data of a buffered task as one buffer (its pieces go back to the pool). */
  private assemble(task: IscsiTask, pieces: readonly { offset: number; data: Buffer }[]): Buffer {
    if (pieces.length === 1 && pieces[0]!.data.length === task.edtl) return pieces[0]!.data;
    const pool = this.port.bufferPool;
    const whole = pool.acquire(task.edtl);
    for (const p of pieces) p.data.copy(whole, p.offset);
    this.releasePooled(task);
    task.pooled.push(whole);
    return whole;
  }

  /**
   * Data-Out timeout: a task that has waited `timeoutMs` for solicited or unsolicited Data-Out
   * (outstanding R2Ts or unsolicited data allowed, not a streamed write waiting for the file to
   * catch up) without any arriving ends with CHECK CONDITION, ABORTED COMMAND / INITIATOR RESPONSE TIMEOUT
   * (SPC-4 4Bh/06h), and its memory goes back. RFC 7143 leaves the target's wait unbounded;
   * without a bound, a command that never gets its data holds memory for as long as its session.
   */
  expireDataOut(now: number, timeoutMs: number): void {
    for (const task of this.port.session.tasks.values()) {
      if (task.awaitingInitiator && now - task.lastDataAt >= timeoutMs) {
        this.endWith(task, 'initiator-response-timeout', `no Data-Out for ${Math.round((now - task.lastDataAt) / 1000)} s`);
      }
    }
  }

  /** Count task data against the server's DataBudget (reads: the buffer; writes: data not yet in the file). */
  private hold(task: IscsiTask, bytes: number): void {
    task.held += bytes;
    this.account.take(bytes);
  }

  private release(task: IscsiTask, bytes = task.held): void {
    const n = Math.min(bytes, task.held);
    if (n === 0) return;
    task.held -= n;
    this.account.give(n);
  }

  /** A Data-Out whose payload was lost (digest error, oversize): the task cannot complete correctly. */
  failTransfer(bhs: Buffer, why: 'data-digest' | 'oversize'): void {
    const task = this.port.session.tasks.get(bhs.readUInt32BE(16));
    if (task === undefined || task.write.kind === 'none' || (task.write.kind === 'buffered' && task.scsi.state !== 'pending')) return;
    this.endWith(task, why === 'data-digest' ? 'data-digest-error' : 'incorrect-amount-of-data', `write data lost (${why})`);
  }

  /**
   * §11.8: keep up to MaxOutstandingR2T solicitations of at most MaxBurstLength each. A streamed
   * write solicits only while less than two bursts wait for the SCSI layer (bounded memory).
   */
  private issueR2Ts(task: IscsiTask): void {
    if (this.port.closed || task.scsi.aborted || task.transferFailure !== null || task.scsi.state === 'done') return;
    const p = this.port.session.params;
    const stream = task.write.kind === 'streamed' ? task.write.stream : null;
    while (task.r2ts.length < p.maxOutstandingR2T && task.nextR2TOffset < task.edtl) {
      if (stream !== null && task.nextR2TOffset - stream.delivered >= 2 * p.maxBurstLength) return;
      const offset = task.nextR2TOffset;
      const length = Math.min(p.maxBurstLength, task.edtl - offset);
      const ttt = this.port.allocateTtt();
      task.r2ts.push({ ttt, end: offset + length, nextOffset: offset, nextDataSN: 0 });
      task.nextR2TOffset += length;
      task.lastDataAt = Date.now();
      this.port.send(r2tHeader(task.itt, task.lunField, ttt, task.r2tSN++, offset, length));
    }
  }

  private failTask(task: IscsiTask, pdu: Pdu, why: TransferFailure, detail: string): void {
    this.port.bufferPool.release(pdu.data);
    this.port.reject(RejectReason.ProtocolError, pdu.bhs, detail);
    this.endWith(task, why, detail);
  }

  /** The task's data transfer failed (or the command was unacceptable): it ends with that CHECK CONDITION. */
  private endWith(task: IscsiTask, why: TransferFailure, detail: string): void {
    this.port.log.warn({ itt: task.itt, why: detail }, 'command terminated');
    if (task.write.kind === 'streamed') {
      // The handler is already running: stop its data; it answers with this failure when it returns.
      task.transferFailure ??= why;
      task.write.stream.fail(new Error(detail));
      return;
    }
    this.port.session.target?.device.discard(task.scsi);
    this.complete(task, transferFailed(why));
  }

  private execute(task: IscsiTask, dataOut: Buffer | undefined): void {
    if (task.isRead && (this.deferred.length > 0 || !this.account.mayStart(readCharge(task)))) {
      // Wait, in order (still pending, so task management can end it), until memory is given back.
      this.deferred.push(task);
      if (!this.awaitingBudget) this.runDeferred();
      return;
    }
    this.start(task, dataOut);
  }

  private start(task: IscsiTask, dataOut: Buffer | undefined): void {
    const device = this.port.session.target!.device;
    if (task.write.kind !== 'streamed') task.r2ts.length = 0;
    let dataInBuffer: Buffer | undefined;
    if (task.isRead) {
      this.hold(task, readCharge(task));
      const pool = this.port.bufferPool;
      // Only a pooled buffer is worth offering: a small read (INQUIRY, MODE SENSE) makes its own.
      if (pool.pools(task.edtl)) {
        dataInBuffer = pool.acquire(task.edtl);
        task.pooled.push(dataInBuffer);
      }
    }
    this.executing++;
    const payload = task.write.kind === 'streamed'
      ? { dataOutStream: task.write.stream, dataInLength: 0 }
      : { dataOut, dataInLength: task.isRead ? task.edtl : 0, dataInBuffer };
    device.run(task.scsi, payload).then(
      (res) => this.finished(task, res),
      (err: unknown) => {
        this.port.log.error({ err, itt: task.itt }, 'SCSI layer failed');
        this.finished(task, internalTargetFailure());
      },
    );
  }

  private finished(task: IscsiTask, res: ScsiResponse): void {
    if (task.transferFailure !== null) res = transferFailed(task.transferFailure);
    if (res.status === ScsiStatus.CheckCondition && res.sense !== undefined && this.port.log.isLevelEnabled('debug')) {
      // Fixed-format sense (SPC-4 §4.5.3): key in byte 2, ASC/ASCQ in bytes 12-13.
      const s = res.sense;
      this.port.log.debug({ itt: task.itt, opcode: task.scsi.cdb[0], key: s[2]! & 0x0f, asc: s[12], ascq: s[13] }, 'CHECK CONDITION');
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

  /** The task's transport resources go back: budget (unless its read data is still to be sent), tag, window credit. */
  private retire(task: IscsiTask, sendingData = false): void {
    if (task.write.kind === 'streamed') task.write.stream.handlerDone(task.scsi.buffersPinned); // the SCSI layer has answered
    task.write = { kind: 'none' };
    if (!sendingData) this.release(task);
    const tasks = this.port.session.tasks;
    if (tasks.get(task.itt) === task) tasks.delete(task.itt);
    this.releaseIfCounted(task.immediate);
  }

  /**
   * The device aborted the task (task management, PREEMPT AND ABORT, nexus loss). A pending one
   * ends here; a running one stops receiving data and ends when the SCSI layer lets go of it.
   */
  private aborted(task: IscsiTask, reportStatus: boolean): void {
    if (task.scsi.state === 'running') {
      if (task.write.kind === 'streamed') task.write.stream.fail(new Error('task aborted'));
      return;
    }
    const i = this.deferred.indexOf(task);
    if (i >= 0) this.deferred.splice(i, 1);
    this.retire(task);
    this.releasePooled(task);
    if (reportStatus && !this.port.closed) this.port.send(scsiResponseHeader(task.itt, ScsiStatus.TaskAborted, 0, 0), undefined, true);
  }

  /** Send the outcome of a task (RFC 7143 §11.4, §11.7) and retire it. */
  private complete(task: IscsiTask, res: ScsiResponse): void {
    const port = this.port;
    const data = res.data;
    const sendLength = task.isRead && !task.scsi.aborted && !port.closed ? Math.min(data?.length ?? 0, task.edtl) : 0;
    this.retire(task, sendLength > 0);
    if (task.scsi.aborted) {
      this.releasePooled(task);
      if (task.scsi.reportAborted && !port.closed) {
        port.send(scsiResponseHeader(task.itt, ScsiStatus.TaskAborted, 0, 0), undefined, true);
      }
      return;
    }
    this.count(task, res, sendLength);
    const { residualFlags, residual } = residualOf(task, res);
    const good = res.status === ScsiStatus.Good && res.sense === undefined;
    if (sendLength > 0) {
      // The data may be (a view of) the task's read buffer: it goes back to the pool, and its
      // budget is given back, only once the socket has taken it.
      this.sending.add(task);
      sendDataIn(port, task, data!, sendLength, good ? { status: res.status, residualFlags, residual } : null, () => this.sent(task));
      if (good) return;
    } else {
      this.releasePooled(task);
    }
    port.send(scsiResponseHeader(task.itt, res.status, residualFlags, residual), senseSegmentOf(res), true);
  }

  /** The LUN's I/O statistics: kind, data carried (read data sent, write data received), latency, failure. */
  private count(task: IscsiTask, res: ScsiResponse, sentBytes: number): void {
    const stats = this.port.session.target?.ioStats(task.scsi.lun);
    if (stats === undefined) return;
    const kind = ioKind(task.scsi.cdb);
    const bytes = kind === 'read' ? sentBytes : kind === 'write' ? task.received : 0;
    stats.of(kind).record(bytes, (performance.now() - task.receivedAt) / 1000, failureReason(res));
  }

  /** A read's data has left for the socket: its buffer and budget go back. */
  private sent(task: IscsiTask): void {
    this.sending.delete(task);
    this.releasePooled(task);
    this.release(task);
  }

  /** The connection is gone: read data that will never be written gives its budget back. */
  closed(): void {
    for (const task of [...this.sending]) this.sent(task);
    this.account.close();
  }

  /**
   * The task's pool buffers are no longer read by anyone (SCSI layer done, data sent). Unless a
   * backend call given up on may still read or fill them (`buffersPinned`): then they are dropped,
   * never reused, and collected once that system call returns.
   */
  private releasePooled(task: IscsiTask): void {
    if (!task.scsi.buffersPinned) for (const b of task.pooled) this.port.bufferPool.release(b);
    task.pooled.length = 0;
  }

  private releaseIfCounted(immediate: boolean): void {
    if (!immediate) this.port.session.releaseCredit();
  }

  private runDeferred(): void {
    while (this.deferred.length > 0 && !this.port.closed) {
      if (!this.account.mayStart(readCharge(this.deferred[0]!))) {
        if (!this.awaitingBudget) {
          this.awaitingBudget = true;
          this.port.dataBudget.watch(() => {
            if (!this.port.closed && this.deferred.length > 0 && !this.account.mayStart(readCharge(this.deferred[0]!))) return false;
            this.awaitingBudget = false;
            this.runDeferred();
            return true;
          });
        }
        return;
      }
      const task = this.deferred.shift()!;
      if (task.scsi.state === 'pending') this.start(task, undefined);
    }
  }

  /** Resolves once every command handed to the SCSI layer has finished. */
  drain(): Promise<void> {
    if (this.executing === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }
}

/** What a read is charged against the budget: its buffer, at most the largest transfer a command produces. */
function readCharge(task: IscsiTask): number {
  return Math.min(task.edtl, MAX_READ_DATA);
}
