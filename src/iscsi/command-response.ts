import { dataInHeader } from '../pdu/target-pdus.js';
import type { ScsiResponse } from '../scsi/types.js';
import type { IscsiTask } from './iscsi-task.js';
import type { SessionPort } from './session-port.js';

/** Residual flags of SCSI Response / Data-In (RFC 7143 §11.4.5). */
const UNDERFLOW = 0x02;
const OVERFLOW = 0x04;

/** The residual of a command's outcome (RFC 7143 §11.4.5): EDTL against what the CDB transferred. */
export function residualOf(task: IscsiTask, res: ScsiResponse): { residualFlags: number; residual: number } {
  const edtl = task.edtl;
  const available = res.data === undefined ? 0 : res.data.length;
  let needed: number;
  if (task.isRead) needed = res.transferLength ?? available;
  // §11.4.5.1: compare what the CDB asked to transfer with what the initiator announced.
  else if (task.isWrite || edtl === 0) needed = res.transferLength ?? (task.isWrite ? edtl : available);
  else return { residualFlags: 0, residual: 0 };
  if (needed > edtl) return { residualFlags: OVERFLOW, residual: needed - edtl };
  if (needed < edtl) return { residualFlags: UNDERFLOW, residual: edtl - needed };
  return { residualFlags: 0, residual: 0 };
}

/** §11.4.7: the SCSI Response data segment, SenseLength (2 bytes) then the sense data. */
export function senseSegmentOf(res: ScsiResponse): Buffer | undefined {
  if (res.sense === undefined) return undefined;
  const segment = Buffer.allocUnsafe(2 + res.sense.length);
  segment.writeUInt16BE(res.sense.length, 0);
  res.sense.copy(segment, 2);
  return segment;
}

/**
 * Data-In PDUs of at most the initiator's MaxRecvDataSegmentLength, sequences of at most
 * MaxBurstLength (F bit at each sequence end), status in the last PDU when given (§11.7).
 */
export function sendDataIn(
  port: SessionPort, task: IscsiTask, data: Buffer, length: number,
  status: { status: number; residualFlags: number; residual: number } | null,
  onWritten: () => void,
): void {
  const p = port.session.params;
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
    port.send(header, data.subarray(offset, offset + seg), last && status !== null, last ? onWritten : undefined);
    offset += seg;
    if (burstLeft === 0) burstLeft = maxBurst;
  }
}
