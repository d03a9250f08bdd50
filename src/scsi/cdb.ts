/** Operation codes implemented here (SPC-4 / SBC-3 command tables). */
export const Op = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  RESERVE_6: 0x16,
  RELEASE_6: 0x17,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  WRITE_AND_VERIFY_10: 0x2e,
  VERIFY_10: 0x2f,
  PRE_FETCH_10: 0x34,
  SYNCHRONIZE_CACHE_10: 0x35,
  READ_DEFECT_DATA_10: 0x37,
  WRITE_SAME_10: 0x41,
  UNMAP: 0x42,
  MODE_SELECT_10: 0x55,
  RESERVE_10: 0x56,
  RELEASE_10: 0x57,
  MODE_SENSE_10: 0x5a,
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
  EXTENDED_COPY: 0x83,
  RECEIVE_COPY_RESULTS: 0x84,
  READ_16: 0x88,
  COMPARE_AND_WRITE: 0x89,
  WRITE_16: 0x8a,
  ORWRITE_16: 0x8b,
  WRITE_AND_VERIFY_16: 0x8e,
  VERIFY_16: 0x8f,
  PRE_FETCH_16: 0x90,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  MAINTENANCE_IN: 0xa3,
  MAINTENANCE_OUT: 0xa4,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
  WRITE_AND_VERIFY_12: 0xae,
  VERIFY_12: 0xaf,
  READ_DEFECT_DATA_12: 0xb7,
} as const;

/** Service actions. */
export const Sa = {
  READ_CAPACITY_16: 0x10, // SERVICE ACTION IN(16), SBC-3
  GET_LBA_STATUS: 0x12, // SERVICE ACTION IN(16), SBC-3
  REPORT_SUPPORTED_OPERATION_CODES: 0x0c, // MAINTENANCE IN, SPC-4 §6.35
  REPORT_SUPPORTED_TMFS: 0x0d, // MAINTENANCE IN, SPC-4 §6.36
  REPORT_TARGET_PORT_GROUPS: 0x0a, // MAINTENANCE IN, SPC-4 §6.37
  SET_TARGET_PORT_GROUPS: 0x0a, // MAINTENANCE OUT, SPC-4 §6.45
} as const;

/**
 * CDB USAGE DATA bytes (SPC-4 §6.35.3) the command tables share: the CONTROL byte (only NACA is
 * examined, and rejected), and a 32-bit or 64-bit field whose bits are all used.
 */
export const CONTROL_USAGE = 0x04;
export const FIELD32_USAGE: readonly number[] = [0xff, 0xff, 0xff, 0xff];
export const FIELD64_USAGE: readonly number[] = [...FIELD32_USAGE, ...FIELD32_USAGE];

/** CDB length from the group code (SPC-4 §4.3, group code); 0 for reserved / vendor / variable-length groups. */
export function cdbLengthOfOpcode(op: number): number {
  switch (op >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

/** Big-endian 64-bit field as a number. Values above 2^53 lose precision but stay above any capacity. */
export function readU64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 0x1_0000_0000 + b.readUInt32BE(off + 4);
}

/** Big-endian 64-bit write of a non-negative safe integer. */
export function writeU64(b: Buffer, value: number, off: number): void {
  b.writeUInt32BE(Math.floor(value / 0x1_0000_0000) >>> 0, off);
  b.writeUInt32BE(value >>> 0, off + 4);
}

/** SPC-4 §4.2.5.6: return no more than ALLOCATION LENGTH bytes (never an error to be short). */
export function truncate(data: Buffer, allocationLength: number): Buffer {
  return allocationLength < data.length ? data.subarray(0, allocationLength) : data;
}

/** Write `s` as ASCII left-aligned and space padded into b[off, off+len) (SPC-4 §4.4.1). */
export function writeAsciiPadded(b: Buffer, s: string, off: number, len: number): void {
  b.fill(0x20, off, off + len);
  const n = Math.min(s.length, len);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    b[off + i] = c >= 0x20 && c <= 0x7e ? c : 0x20;
  }
}
