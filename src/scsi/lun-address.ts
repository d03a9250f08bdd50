/**
 * LUN field encoding, SAM-5 §4.7: single-level LUNs with the peripheral device addressing method
 * (§4.7.7.2, LUN 0-255) and the flat space addressing method (§4.7.7.3, LUN 0-16383).
 */

/** decodeLun() result for a LUN structure this target does not support (multi-level, extended, LUN addressing). */
export const UNSUPPORTED_LUN = -1;

/** Largest LUN encodeLun() can express (14-bit flat space). */
export const MAX_LUN = 0x3fff;

/** Decode the 8-byte LUN at buf[offset]; UNSUPPORTED_LUN if not a single-level peripheral/flat LUN. */
export function decodeLun(buf: Buffer, offset: number): number {
  const b0 = buf[offset]!;
  const b1 = buf[offset + 1]!;
  // Second through fourth levels must be zero for a single-level LUN (SAM-5 §4.7.4).
  if (buf.readUInt32BE(offset + 2) !== 0 || buf.readUInt16BE(offset + 6) !== 0) return UNSUPPORTED_LUN;
  switch (b0 >> 6) {
    case 0: // peripheral device addressing: bus identifier 0 addresses this target's LUs
      return (b0 & 0x3f) === 0 ? b1 : UNSUPPORTED_LUN;
    case 1: // flat space addressing
      return ((b0 & 0x3f) << 8) | b1;
    default: // logical unit addressing (10b) and extended addressing (11b, well-known LUs)
      return UNSUPPORTED_LUN;
  }
}

/** Encode `lun` into out[offset, offset+8): peripheral addressing below 256, flat space above. */
export function encodeLun(lun: number, out: Buffer, offset: number): void {
  if (!Number.isInteger(lun) || lun < 0 || lun > MAX_LUN) throw new RangeError(`LUN ${lun} is not encodable`);
  out.fill(0, offset, offset + 8);
  if (lun < 256) {
    out[offset + 1] = lun;
  } else {
    out[offset] = 0x40 | (lun >> 8);
    out[offset + 1] = lun & 0xff;
  }
}
