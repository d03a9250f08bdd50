import { writeAsciiPadded, writeU64 } from './cdb.js';
import type { TargetPort } from './nexus.js';
import { thirdPartyCopyPage } from './xcopy.js';

/** What INQUIRY reports about a logical unit. */
export interface InquiryIdentity {
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  readonly serial: string;
  /** 16-byte NAA IEEE Registered Extended designator. */
  readonly naaBytes: Buffer;
  readonly targetName: string;
  readonly targetPortalGroupTag?: number;
  /** TPGS field (SPC-4 §6.6.2): 11b when the LU has target port groups (ALUA), else 0. */
  readonly tpgs?: number;
  readonly blockSize: number;
  readonly maxTransferBlocks: number;
  /** Logical block provisioning (SBC-3 §4.7): thin provisioned with UNMAP and WRITE SAME UNMAP. */
  readonly thinProvisioned?: boolean;
  /** OPTIMAL UNMAP GRANULARITY in blocks. */
  readonly unmapGranularity?: number;
  readonly maxUnmapBlocks?: number;
  readonly maxUnmapDescriptors?: number;
  /** MAXIMUM COMPARE AND WRITE LENGTH in blocks (0: COMPARE AND WRITE not supported). */
  readonly maxCompareWriteBlocks?: number;
  /** MAXIMUM WRITE SAME LENGTH in blocks; when set, WSNZ = 1 (a zero NUMBER OF LOGICAL BLOCKS is refused). */
  readonly maxWriteSameBlocks?: number;
}

/** SPC-4 §6.6.2 peripheral qualifier / device type byte for "no LU on this LUN". */
export const PQ_NOT_CONNECTED_UNKNOWN = 0x7f;

/** Version descriptors (SPC-4 §6.6.2 version descriptor codes): SAM-5, iSCSI, SPC-4, SBC-3. */
const VERSION_DESCRIPTORS = [0x00a0, 0x0960, 0x0460, 0x04c0];

const STANDARD_INQUIRY_LENGTH = 74;

/** Standard INQUIRY data (SPC-4 §6.6.2). `peripheral` = qualifier << 5 | device type. */
export function standardInquiry(id: Pick<InquiryIdentity, 'vendor' | 'product' | 'revision' | 'tpgs'>, peripheral = 0x00): Buffer {
  const b = Buffer.alloc(STANDARD_INQUIRY_LENGTH);
  b[0] = peripheral;
  b[1] = 0x00; // RMB = 0
  b[2] = 0x06; // VERSION: SPC-4
  b[3] = 0x12; // HISUP = 1, RESPONSE DATA FORMAT = 2
  b[4] = STANDARD_INQUIRY_LENGTH - 5; // ADDITIONAL LENGTH
  b[5] = 0x08 | ((id.tpgs ?? 0) << 4); // 3PC (EXTENDED COPY), TPGS; no SCCS, ACC, PROTECT
  b[6] = 0x00;
  b[7] = 0x02; // CMDQUE
  writeAsciiPadded(b, id.vendor, 8, 8);
  writeAsciiPadded(b, id.product, 16, 16);
  writeAsciiPadded(b, id.revision, 32, 4);
  for (let i = 0; i < VERSION_DESCRIPTORS.length; i++) b.writeUInt16BE(VERSION_DESCRIPTORS[i]!, 58 + 2 * i);
  return b;
}

export const VpdPage = {
  SUPPORTED_PAGES: 0x00,
  UNIT_SERIAL_NUMBER: 0x80,
  DEVICE_IDENTIFICATION: 0x83,
  BLOCK_LIMITS: 0xb0,
  BLOCK_DEVICE_CHARACTERISTICS: 0xb1,
  LOGICAL_BLOCK_PROVISIONING: 0xb2,
  THIRD_PARTY_COPY: 0x8f,
} as const;

const SUPPORTED = [0x00, 0x80, 0x83, 0x8f, 0xb0, 0xb1, 0xb2];

/** Build a VPD page, or undefined when the page is not supported. */
export function vpdPage(id: InquiryIdentity, page: number, port?: TargetPort): Buffer | undefined {
  switch (page) {
    case VpdPage.SUPPORTED_PAGES:
      return page4(0x00, Buffer.from(SUPPORTED));
    case VpdPage.UNIT_SERIAL_NUMBER:
      return page4(0x80, Buffer.from(ascii(id.serial), 'latin1'));
    case VpdPage.DEVICE_IDENTIFICATION:
      return page4(0x83, deviceIdentification(id, port));
    case VpdPage.THIRD_PARTY_COPY:
      return thirdPartyCopyPage();
    case VpdPage.BLOCK_LIMITS:
      return blockLimits(id);
    case VpdPage.BLOCK_DEVICE_CHARACTERISTICS: {
      // SBC-3 §6.5.2: MEDIUM ROTATION RATE 0001h = non-rotating medium.
      const p = Buffer.alloc(0x3c);
      p.writeUInt16BE(0x0001, 0);
      return page4(0xb1, p);
    }
    case VpdPage.LOGICAL_BLOCK_PROVISIONING: {
      // SBC-3 §6.5.4. Thin provisioned: LBPU (UNMAP), LBPWS (WRITE SAME(16) UNMAP), LBPWS10
      // (WRITE SAME(10) UNMAP), LBPRZ = 1 (byte 5 bit 2; SBC-4's 3-bit LBPRZ field 001b: a
      // deallocated block reads as zeros), ANC_SUP 0, DP 0, PROVISIONING TYPE 010b. THRESHOLD
      // EXPONENT 0: no provisioning thresholds. Otherwise fully provisioned (000b).
      const p = Buffer.alloc(4);
      if (id.thinProvisioned) {
        p[1] = 0x80 | 0x40 | 0x20 | 0x04;
        p[2] = 0x02;
      }
      return page4(0xb2, p);
    }
    default:
      return undefined;
  }
}

/** VPD page header (SPC-4 §7.8.1): device type 0, page code, 2-byte page length. */
function page4(code: number, body: Buffer): Buffer {
  const b = Buffer.alloc(4 + body.length);
  b[1] = code;
  b.writeUInt16BE(body.length, 2);
  body.copy(b, 4);
  return b;
}

function ascii(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, ' ');
}

/** SBC-3 §6.5.3 Block Limits; page length 3Ch. Offsets below are within the page body (page byte − 4). */
function blockLimits(id: InquiryIdentity): Buffer {
  const p = Buffer.alloc(0x3c);
  // [0] WSNZ 1: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 ("to the last block") is refused;
  // every WRITE SAME is bounded by MAXIMUM WRITE SAME LENGTH below.
  if (id.maxWriteSameBlocks) p[0] = 0x01;
  p[1] = Math.min(255, id.maxCompareWriteBlocks ?? 0); // MAXIMUM COMPARE AND WRITE LENGTH
  // OPTIMAL TRANSFER LENGTH GRANULARITY: 4 KiB worth of blocks (what the backing FS favours).
  p.writeUInt16BE(Math.max(1, Math.floor(4096 / id.blockSize)), 2);
  p.writeUInt32BE(id.maxTransferBlocks, 4); // MAXIMUM TRANSFER LENGTH
  // [8] OPTIMAL TRANSFER LENGTH 0 = not reported (a value here becomes mkfs stripe geometry on
  // Linux). [12] MAXIMUM PREFETCH LENGTH 0: PRE-FETCH does not cache, no limit to report.
  if (id.thinProvisioned) {
    p.writeUInt32BE(id.maxUnmapBlocks ?? 0, 16); // MAXIMUM UNMAP LBA COUNT
    p.writeUInt32BE(id.maxUnmapDescriptors ?? 0, 20); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
    p.writeUInt32BE(id.unmapGranularity ?? 1, 24); // OPTIMAL UNMAP GRANULARITY
    p.writeUInt32BE(0x80000000, 28); // UGAVALID = 1, UNMAP GRANULARITY ALIGNMENT 0
  }
  writeU64(p, id.maxWriteSameBlocks ?? 0, 32); // MAXIMUM WRITE SAME LENGTH
  // [40..59] atomic write limits 0: WRITE ATOMIC is not supported.
  return page4(0xb0, p);
}

/** Designation descriptors of the Device Identification VPD page (SPC-4 §7.8.6). */
/**
 * `port`: the target port the command came through, whose designators (relative target port,
 * target port group, port name) are reported when the LU has target port groups (SPC-4 §7.8.6).
 */
function deviceIdentification(id: InquiryIdentity, port?: TargetPort): Buffer {
  const parts: Buffer[] = [];
  // NAA IEEE Registered Extended: binary, association LU, type 3.
  parts.push(designator(0x01, 0x03, id.naaBytes));
  // T10 vendor ID based: ASCII, association LU, type 1: vendor (8) + serial.
  const t10 = Buffer.alloc(8 + Buffer.byteLength(ascii(id.serial), 'latin1'));
  writeAsciiPadded(t10, id.vendor, 0, 8);
  t10.write(ascii(id.serial), 8, 'latin1');
  parts.push(designator(0x02, 0x01, t10));
  const ISCSI = 0x50; // PROTOCOL IDENTIFIER 5h (iSCSI) in bits 7-4, with PIV = 1
  const tpgt = id.targetPortalGroupTag;
  const reported = id.tpgs ? port : tpgt === undefined ? undefined : {
    relativeId: tpgt === 0 ? 1 : tpgt & 0xffff,
    groupId: tpgt === 0 ? 1 : tpgt & 0xffff,
    // The iSCSI target port name format of RFC 7143 (SAM-2 port naming); LIO formats it the same way.
    name: `${id.targetName},t,0x${(tpgt & 0xffff).toString(16).padStart(4, '0')}`,
  };
  if (reported !== undefined) {
    const rel = Buffer.alloc(4);
    rel.writeUInt16BE(reported.relativeId, 2);
    // Relative target port identifier: binary, PIV, association target port, type 4.
    parts.push(designator(ISCSI | 0x01, 0x80 | 0x10 | 0x04, rel));
    // Target port group: type 5.
    const group = Buffer.alloc(4);
    group.writeUInt16BE(reported.groupId, 2);
    parts.push(designator(ISCSI | 0x01, 0x80 | 0x10 | 0x05, group));
    // SCSI name string of the target port: UTF-8, PIV, association target port, type 8.
    parts.push(designator(ISCSI | 0x03, 0x80 | 0x10 | 0x08, scsiNameString(reported.name)));
  }
  // SCSI name string of the target device: UTF-8, PIV, association target device, type 8.
  parts.push(designator(ISCSI | 0x03, 0x80 | 0x20 | 0x08, scsiNameString(id.targetName)));
  return Buffer.concat(parts);
}

function designator(byte0: number, byte1: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + value.length);
  b[0] = byte0;
  b[1] = byte1;
  b[3] = value.length;
  value.copy(b, 4);
  return b;
}

/** Null-terminated, null-padded to a multiple of 4 bytes, at most 256 (SPC-4 §7.8.6, SCSI name string designator). */
function scsiNameString(name: string): Buffer {
  const utf8 = Buffer.from(name, 'utf8').subarray(0, 251);
  const len = (utf8.length + 1 + 3) & ~3;
  const b = Buffer.alloc(len);
  utf8.copy(b);
  return b;
}
