// EXTENDED COPY parameter list builders for the scsi-xcopy*.test.ts unit tests (not a test file itself).
import { cdb, u32, u64 } from './scsi-helpers.js';

/** Identification CSCD descriptor (E4h) naming an NAA designator, with the copy target's block length. */
export function cscd(naa: string, blockSize: number, pdt = 0): Buffer {
  const d = Buffer.alloc(32);
  d[0] = 0xe4;
  d[1] = pdt;
  d[4] = 0x01; // binary
  d[5] = 0x03; // association LU, NAA
  d[7] = 16;
  Buffer.from(naa, 'hex').copy(d, 8);
  d.writeUIntBE(blockSize, 29, 3);
  return d;
}

/** Block → block segment descriptor (02h); `dc`: NUMBER OF BLOCKS counts destination blocks. */
export function b2b(src: number, dst: number, blocks: number, srcLba: number, dstLba: number, type = 0x02, dc = false): Buffer {
  const d = Buffer.alloc(28);
  d[0] = type;
  d[1] = dc ? 0x02 : 0;
  d.writeUInt16BE(0x18, 2);
  d.writeUInt16BE(src, 4);
  d.writeUInt16BE(dst, 6);
  d.writeUInt16BE(blocks, 10);
  Buffer.from(u64(srcLba)).copy(d, 12);
  Buffer.from(u64(dstLba)).copy(d, 20);
  return d;
}

/** Parameter list: header, CSCD descriptors, segment descriptors. */
export function paramList(cscds: Buffer[], segs: Buffer[], listId = 1, usage = 0): Buffer {
  const c = Buffer.concat(cscds);
  const s = Buffer.concat(segs);
  const h = Buffer.alloc(16);
  h[0] = listId;
  h[1] = usage << 3;
  h.writeUInt16BE(c.length, 2);
  h.writeUInt32BE(s.length, 8);
  return Buffer.concat([h, c, s]);
}

/** EXTENDED COPY (LID1) CDB for a parameter list of `len` bytes. */
export const xcopy = (len: number): Buffer => cdb([0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...u32(len), 0, 0]);
