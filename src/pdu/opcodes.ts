/** iSCSI opcodes, RFC 7143 §11.2.1.2. */
export const enum Opcode {
  // Initiator → target
  NopOut = 0x00,
  ScsiCommand = 0x01,
  TaskMgmtRequest = 0x02,
  LoginRequest = 0x03,
  TextRequest = 0x04,
  DataOut = 0x05,
  LogoutRequest = 0x06,
  SnackRequest = 0x10,
  // Target → initiator
  NopIn = 0x20,
  ScsiResponse = 0x21,
  TaskMgmtResponse = 0x22,
  LoginResponse = 0x23,
  TextResponse = 0x24,
  DataIn = 0x25,
  LogoutResponse = 0x26,
  R2T = 0x31,
  AsyncMessage = 0x32,
  Reject = 0x3f,
}

export const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x00: 'NOP-Out', 0x01: 'SCSI Command', 0x02: 'Task Management Request', 0x03: 'Login Request',
  0x04: 'Text Request', 0x05: 'SCSI Data-Out', 0x06: 'Logout Request', 0x10: 'SNACK Request',
  0x20: 'NOP-In', 0x21: 'SCSI Response', 0x22: 'Task Management Response', 0x23: 'Login Response',
  0x24: 'Text Response', 0x25: 'SCSI Data-In', 0x26: 'Logout Response', 0x31: 'R2T',
  0x32: 'Asynchronous Message', 0x3f: 'Reject',
};

/** Reject reasons, RFC 7143 §11.17.1. */
export const enum RejectReason {
  DataDigestError = 0x02,
  SnackReject = 0x03,
  ProtocolError = 0x04,
  CommandNotSupported = 0x05,
  ImmediateCommandRejected = 0x06,
  TaskInProgress = 0x07,
  InvalidDataAck = 0x08,
  InvalidPduField = 0x09,
  OutOfResources = 0x0a,
  WaitingForLogout = 0x0c,
}

/** The 0xffffffff "reserved" tag value (RFC 7143 §11.2.1.8). */
export const RESERVED_TAG = 0xffffffff;
export const BHS_LENGTH = 48;
