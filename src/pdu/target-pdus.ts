import { Opcode } from './opcodes.js';
import { newHeader } from './writer.js';

/**
 * Builders for the target→initiator PDUs of RFC 7143 §11. Sequence numbers common to all of
 * them (StatSN at 24, ExpCmdSN at 28, MaxCmdSN at 32) are stamped by the connection at send time.
 */

/** SCSI Response, §11.4. `flags`: 0x04 underflow (U), 0x02 overflow (O). */
export function scsiResponseHeader(itt: number, status: number, residualFlags: number, residual: number): Buffer {
  const h = newHeader(Opcode.ScsiResponse, 0x80 | residualFlags);
  h[2] = 0x00; // Response: Command Completed at Target
  h[3] = status;
  h.writeUInt32BE(itt, 16);
  h.writeUInt32BE(0xffffffff, 20); // SNACK Tag
  h.writeUInt32BE(residual >>> 0, 44);
  return h;
}

/** Response field "Target Failure" (§11.4.3): the command did not reach a SCSI status. */
export function scsiTargetFailureHeader(itt: number): Buffer {
  const h = newHeader(Opcode.ScsiResponse, 0x80);
  h[2] = 0x01;
  h.writeUInt32BE(itt, 16);
  h.writeUInt32BE(0xffffffff, 20);
  return h;
}

/**
 * SCSI Data-In, §11.7. With `status` (S bit) the PDU also carries the command status (phase
 * collapse, §11.7.4) and then the residual fields apply.
 */
export function dataInHeader(
  itt: number,
  lunField: Buffer,
  dataSN: number,
  bufferOffset: number,
  final: boolean,
  status: { status: number; residualFlags: number; residual: number } | null,
): Buffer {
  let flags = final ? 0x80 : 0;
  if (status !== null) flags |= 0x01 | status.residualFlags;
  const h = newHeader(Opcode.DataIn, flags);
  if (status !== null) h[3] = status.status;
  lunField.copy(h, 8);
  h.writeUInt32BE(itt, 16);
  h.writeUInt32BE(0xffffffff, 20);
  h.writeUInt32BE(dataSN, 36);
  h.writeUInt32BE(bufferOffset, 40);
  if (status !== null) h.writeUInt32BE(status.residual >>> 0, 44);
  return h;
}

/** Ready To Transfer, §11.8. */
export function r2tHeader(itt: number, lunField: Buffer, ttt: number, r2tSN: number, offset: number, length: number): Buffer {
  const h = newHeader(Opcode.R2T, 0x80);
  lunField.copy(h, 8);
  h.writeUInt32BE(itt, 16);
  h.writeUInt32BE(ttt, 20);
  h.writeUInt32BE(r2tSN, 36);
  h.writeUInt32BE(offset, 40);
  h.writeUInt32BE(length, 44);
  return h;
}

/** NOP-In, §11.19: a reply (itt from the NOP-Out) or a target ping (itt 0xffffffff, our ttt). */
export function nopInHeader(itt: number, ttt: number, lunField?: Buffer): Buffer {
  const h = newHeader(Opcode.NopIn, 0x80);
  if (lunField !== undefined) lunField.copy(h, 8);
  h.writeUInt32BE(itt, 16);
  h.writeUInt32BE(ttt, 20);
  return h;
}

/** Task Management Function Response, §11.6. */
export function tmfResponseHeader(itt: number, response: number): Buffer {
  const h = newHeader(Opcode.TaskMgmtResponse, 0x80);
  h[2] = response;
  h.writeUInt32BE(itt, 16);
  return h;
}

/** Text Response, §11.11. */
export function textResponseHeader(itt: number, ttt: number, final: boolean, cont: boolean, lunField?: Buffer): Buffer {
  const h = newHeader(Opcode.TextResponse, (final ? 0x80 : 0) | (cont ? 0x40 : 0));
  if (lunField !== undefined) lunField.copy(h, 8);
  h.writeUInt32BE(itt, 16);
  h.writeUInt32BE(ttt, 20);
  return h;
}

/** Login Response, §11.13. */
export function loginResponseHeader(f: {
  transit: boolean; cont: boolean; csg: number; nsg: number; isid: Buffer; tsih: number; itt: number;
  statusClass: number; statusDetail: number;
}): Buffer {
  const flags = (f.transit ? 0x80 : 0) | (f.cont ? 0x40 : 0) | ((f.csg & 3) << 2) | (f.transit ? f.nsg & 3 : 0);
  const h = newHeader(Opcode.LoginResponse, flags);
  h[2] = 0x00; // Version-max
  h[3] = 0x00; // Version-active
  f.isid.copy(h, 8, 0, 6);
  h.writeUInt16BE(f.tsih, 14);
  h.writeUInt32BE(f.itt, 16);
  h[36] = f.statusClass;
  h[37] = f.statusDetail;
  return h;
}

/** Logout Response, §11.15. */
export function logoutResponseHeader(itt: number, response: number, time2Wait: number, time2Retain: number): Buffer {
  const h = newHeader(Opcode.LogoutResponse, 0x80);
  h[2] = response;
  h.writeUInt32BE(itt, 16);
  h.writeUInt16BE(time2Wait, 40);
  h.writeUInt16BE(time2Retain, 42);
  return h;
}

/** Reject, §11.17: the data segment carries the rejected PDU's header. */
export function rejectHeader(reason: number): Buffer {
  const h = newHeader(Opcode.Reject, 0x80);
  h[2] = reason;
  h.writeUInt32BE(0xffffffff, 16);
  return h;
}

/** Asynchronous Message, §11.9. */
export function asyncMessageHeader(event: number, parameter1: number, parameter2: number, parameter3: number): Buffer {
  const h = newHeader(Opcode.AsyncMessage, 0x80);
  h.writeUInt32BE(0xffffffff, 16);
  h[36] = event;
  h.writeUInt16BE(parameter1, 38);
  h.writeUInt16BE(parameter2, 40);
  h.writeUInt16BE(parameter3, 42);
  return h;
}
