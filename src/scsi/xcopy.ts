/**
 * Third-party copy, SPC-4 §5.16 / §6.4 / §6.18: EXTENDED COPY (LID1) with block-to-block segment
 * descriptors between logical units of this target (VMware VAAI "full copy" clones a VM disk
 * without moving the data over the network), RECEIVE COPY RESULTS (COPY STATUS, OPERATING
 * PARAMETERS) and the Third-party Copy VPD page.
 *
 * Copy targets (CSCD descriptors) are named by identification descriptor (E4h) with a designator
 * from VPD page 83h; only logical units of this SCSI target device can be copied from or to.
 * Segments run in order, each in chunks under the destination's shared write lock.
 */
import { Op, readU64, truncate, CONTROL_USAGE, FIELD32_USAGE } from './cdb.js';
import type { CommandDescriptor, DeviceContext, Modification } from './command-table.js';
import type { LogicalUnit } from './logical-unit.js';
import { outOfRange } from './block-transfer.js';
import {
  Asc,
  SenseKey,
  checkCondition,
  good,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  senseError,
  storageTimedOut,
} from './sense.js';
import type { ItNexus } from './nexus.js';
import type { ScsiRequest, ScsiResponse, TaskHandle } from './types.js';

export const XCOPY_LIMITS = {
  /** MAXIMUM CSCD DESCRIPTOR COUNT. */
  cscdDescriptors: 8,
  /** MAXIMUM SEGMENT DESCRIPTOR COUNT. */
  segmentDescriptors: 64,
  /** MAXIMUM DESCRIPTOR LIST LENGTH (CSCD + segment descriptors, bytes). */
  descriptorListLength: 4096,
  /** MAXIMUM SEGMENT LENGTH (bytes): one segment's NUMBER OF BLOCKS is at most 65535 anyway. */
  segmentLength: 65535 * 4096,
} as const;

/** Bytes read and written per step of a segment. */
const COPY_CHUNK = 1024 * 1024;

const CSCD_IDENTIFICATION = 0xe4;
const SEGMENT_BLOCK_TO_BLOCK = 0x02;
const CSCD_LENGTH = 32;
const B2B_LENGTH = 28;

const RcrSa = { COPY_STATUS: 0x00, OPERATING_PARAMETERS: 0x03 } as const;

/** Held COPY STATUS data (SPC-4 §6.18.3), per I_T nexus and list identifier. */
interface CopyStatus {
  /** COPY MANAGER STATUS: 01h completed without errors, 02h completed with errors. */
  status: number;
  segmentsProcessed: number;
  /** Bytes copied. */
  transferred: number;
}

/** Per-LU copy manager state: the held copy status data. */
export class CopyManager {
  private readonly held = new Map<string, CopyStatus>();

  hold(nexusId: string, listId: number, s: CopyStatus): void {
    const key = `${nexusId}\n${listId}`;
    this.held.delete(key);
    this.held.set(key, s);
    // Bounded: the oldest held results go first (SPC-4 lets the copy manager discard held data).
    while (this.held.size > 64) this.held.delete(this.held.keys().next().value!);
  }

  take(nexusId: string, listId: number): CopyStatus | undefined {
    const key = `${nexusId}\n${listId}`;
    const s = this.held.get(key);
    if (s !== undefined) this.held.delete(key);
    return s;
  }

  /** I_T nexus loss discards that nexus' held data; a LU reset discards everything. */
  forget(nexusId?: string): void {
    if (nexusId === undefined) {
      this.held.clear();
      return;
    }
    for (const k of [...this.held.keys()]) if (k.startsWith(`${nexusId}\n`)) this.held.delete(k);
  }
}

function copyAborted(asc: number, segment?: number): ScsiResponse {
  const r = checkCondition(SenseKey.COPY_ABORTED, asc >> 8, asc & 0xff);
  // COMMAND-SPECIFIC INFORMATION: the segment descriptor being processed (SPC-4 §6.4.3.1).
  if (segment !== undefined) r.sense!.writeUInt32BE(segment, 8);
  return r;
}

interface Segment {
  src: number;
  dst: number;
  blocks: number;
  /** DC: NUMBER OF BLOCKS counts destination blocks (else source blocks). */
  destinationCount: boolean;
  srcLba: number;
  dstLba: number;
  /** Offset of the descriptor in the parameter list (for field pointers). */
  at: number;
}

/** EXTENDED COPY (LID1), SPC-4 §6.4. */
async function extendedCopy(lu: LogicalUnit, req: ScsiRequest, dev: DeviceContext): Promise<ScsiResponse> {
  const c = req.cdb;
  if ((c[1]! & 0x1f) !== 0) return invalidFieldInCdb(1, 4); // LID4 (service action 01h) is not supported
  const listLen = c.readUInt32BE(10);
  if (listLen === 0) return good(); // SPC-4: not an error; nothing to copy
  const data = req.dataOut;
  if (data === undefined || data.length < listLen) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_INFORMATION_UNIT);
  const p = data.subarray(0, listLen);
  if (p.length < 16) return parameterListLengthError();
  const listId = p[0]!;
  const listIdUsage = (p[1]! >> 3) & 0x03;
  if (p[1]! & 0x20) return invalidFieldInParameterList(1, 5); // STR: no stream devices
  const cscdLen = p.readUInt16BE(2);
  const segLen = p.readUInt32BE(8);
  const inlineLen = p.readUInt32BE(12);
  if (16 + cscdLen + segLen + inlineLen > p.length) return parameterListLengthError();
  if (cscdLen + segLen > XCOPY_LIMITS.descriptorListLength) return parameterListLengthError();
  if (inlineLen !== 0) return invalidFieldInParameterList(12); // MAXIMUM INLINE DATA LENGTH 0

  // CSCD descriptors.
  if (cscdLen % CSCD_LENGTH !== 0) return parameterListLengthError();
  const cscdCount = cscdLen / CSCD_LENGTH;
  if (cscdCount > XCOPY_LIMITS.cscdDescriptors) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.TOO_MANY_TARGET_DESCRIPTORS);
  const targets: (LogicalUnit | undefined)[] = [];
  for (let i = 0; i < cscdCount; i++) {
    const o = 16 + i * CSCD_LENGTH;
    const d = p.subarray(o, o + CSCD_LENGTH);
    if (d[0] !== CSCD_IDENTIFICATION) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, { field: { cd: false, byte: o } });
    // [1] LU ID TYPE (ignored, SPC-4) / NUL (obsolete) / PERIPHERAL DEVICE TYPE: block devices only.
    if ((d[1]! & 0x1f) !== 0) return invalidFieldInParameterList(o + 1);
    const desigLen = d[7]!;
    if (desigLen > 16) return invalidFieldInParameterList(o + 7);
    const target = dev.unitByDesignator?.(d[4]! & 0x0f, d[5]! & 0x3f, d.subarray(8, 8 + desigLen));
    if (target !== undefined) {
      // Device type specific parameters: PAD 0 and the block length of the copy target.
      if (d.readUIntBE(29, 3) !== target.blockSize) return invalidFieldInParameterList(o + 29);
    }
    targets.push(target);
  }

  // Segment descriptors.
  const segments: Segment[] = [];
  let o = 16 + cscdLen;
  const end = o + segLen;
  while (o < end) {
    if (end - o < 4) return parameterListLengthError();
    const type = p[o]!;
    const dlen = p.readUInt16BE(o + 2) + 4;
    if (type !== SEGMENT_BLOCK_TO_BLOCK) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, { field: { cd: false, byte: o } });
    if (dlen !== B2B_LENGTH) return invalidFieldInParameterList(o + 2);
    if (o + dlen > end) return parameterListLengthError();
    if (segments.length === XCOPY_LIMITS.segmentDescriptors) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.TOO_MANY_SEGMENT_DESCRIPTORS);
    segments.push({
      src: p.readUInt16BE(o + 4),
      dst: p.readUInt16BE(o + 6),
      blocks: p.readUInt16BE(o + 10),
      destinationCount: (p[o + 1]! & 0x02) !== 0,
      srcLba: readU64(p, o + 12),
      dstLba: readU64(p, o + 20),
      at: o,
    });
    o += dlen;
  }

  // Every segment is checked before anything is copied: a copy that cannot complete writes nothing.
  // Errors from here on are COPY ABORTED (the segment in the sense data) and leave held status data.
  const status: CopyStatus = { status: 0x01, segmentsProcessed: 0, transferred: 0 };
  const hold = (): void => {
    if (listIdUsage !== 0x03) lu.copyManager.hold(req.nexus.id, listId, status);
  };
  const abort = (asc: number, segment: number): ScsiResponse => {
    status.status = 0x02;
    hold();
    return copyAborted(asc, segment);
  };
  const plans: SegmentPlan[] = [];
  for (let i = 0; i < segments.length; i++) {
    const plan = planSegment(segments[i]!, targets);
    if (typeof plan === 'number') return abort(plan, i);
    // Refused as the READ / WRITE itself would be: nothing has been copied yet.
    const refused = copyTargetsRefusal(plan, req.nexus);
    if (refused !== undefined) return refused;
    plans.push(plan);
  }
  for (let i = 0; i < plans.length; i++) {
    const asc = await copySegment(plans[i]!, req.nexus, status, req.task);
    if (asc !== undefined) return abort(asc, i);
    status.segmentsProcessed++;
  }
  hold();
  return good();
}

/** One block → block segment resolved against its copy targets. */
interface SegmentPlan {
  src: LogicalUnit;
  dst: LogicalUnit;
  /** Byte offsets on each copy target, and the bytes to copy. */
  srcOffset: number;
  dstOffset: number;
  bytes: number;
}

/**
 * Resolve a block → block segment (SPC-4 §6.4.6.3, descriptor 02h): the source LBA counts source
 * blocks and the destination LBA destination blocks; NUMBER OF BLOCKS counts source blocks, or
 * destination blocks with DC = 1. Returns the ASC of the COPY ABORTED that ends the command when
 * the segment cannot be copied: an unknown copy target (UNREACHABLE COPY TARGET); bytes that are
 * not whole blocks on both sides (UNEXPECTED INEXACT SEGMENT: residue handling is not offered);
 * a range past either capacity (NO ADDITIONAL SENSE INFORMATION: SPC-4 names no code for it, and
 * libiscsi's ExtendedCopy.ValidSegDescr requires COPY ABORTED with 00h/00h; the segment is in the
 * COMMAND-SPECIFIC INFORMATION).
 */
function planSegment(s: Segment, targets: readonly (LogicalUnit | undefined)[]): SegmentPlan | number {
  const src = targets[s.src];
  const dst = targets[s.dst];
  if (src === undefined || dst === undefined) return Asc.UNREACHABLE_COPY_TARGET;
  const bytes = s.blocks * (s.destinationCount ? dst.blockSize : src.blockSize);
  if (bytes % src.blockSize !== 0 || bytes % dst.blockSize !== 0) return Asc.UNEXPECTED_INEXACT_SEGMENT;
  if (outOfRange(src, s.srcLba, bytes / src.blockSize) || outOfRange(dst, s.dstLba, bytes / dst.blockSize)) return Asc.NO_ADDITIONAL_SENSE;
  return { src, dst, srcOffset: s.srcLba * src.blockSize, dstOffset: s.dstLba * dst.blockSize, bytes };
}

/**
 * What the copy targets would answer this nexus' READ (source) and WRITE (destination) with
 * before running it: NOT READY, ALUA state, reservation conflict, write protection (issue: a copy
 * must not reach a logical unit that refuses I/O).
 */
function copyTargetsRefusal(plan: SegmentPlan, nexus: ItNexus): ScsiResponse | undefined {
  return plan.src.copyTargetRefusal('read', nexus) ?? plan.dst.copyTargetRefusal('write', nexus);
}

/**
 * Copy one segment in chunks, each written under the destination's shared range lock over exactly
 * the destination blocks it writes. The copy targets' access is checked again before each chunk,
 * so a reservation preempted or an access state changed mid-copy stops it; so does aborting the
 * task while it waits for a range lock (SAM-5 §7.2). Returns the ASC of the COPY ABORTED on failure.
 */
async function copySegment(plan: SegmentPlan, nexus: ItNexus, status: CopyStatus, task: TaskHandle | undefined): Promise<number | undefined> {
  const { src, dst, bytes } = plan;
  const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, bytes));
  for (let done = 0; done < bytes; ) {
    // COPY_CHUNK is a multiple of every block size (powers of two up to 64 KiB), so chunks are whole blocks on both sides.
    const n = Math.min(COPY_CHUNK, bytes - done);
    const chunk = n === buf.length ? buf : buf.subarray(0, n);
    if (copyTargetsRefusal(plan, nexus) !== undefined) return Asc.COPY_TARGET_DEVICE_NOT_REACHABLE;
    try {
      await src.backend.read(chunk, plan.srcOffset + done, task);
    } catch (err) {
      return storageTimedOut(err) ? Asc.LOGICAL_UNIT_COMMUNICATION_TIME_OUT : Asc.UNRECOVERED_READ_ERROR;
    }
    const at = plan.dstOffset + done;
    const release = await dst.locks.acquire(at / dst.blockSize, n / dst.blockSize, false, task);
    try {
      await dst.backend.write(chunk, at, !dst.writeCache, task);
    } catch (err) {
      return storageTimedOut(err) ? Asc.LOGICAL_UNIT_COMMUNICATION_TIME_OUT : Asc.WRITE_ERROR;
    } finally {
      release();
    }
    done += n;
    status.transferred += n;
  }
  return undefined;
}

/** RECEIVE COPY RESULTS (LID1), SPC-4 §6.18. */
function receiveCopyResults(lu: LogicalUnit, req: ScsiRequest): ScsiResponse {
  const c = req.cdb;
  const sa = c[1]! & 0x1f;
  const alloc = c.readUInt32BE(10);
  if (sa === RcrSa.OPERATING_PARAMETERS) {
    const codes = [SEGMENT_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION];
    const out = Buffer.alloc(44 + codes.length);
    out.writeUInt32BE(out.length - 4, 0); // AVAILABLE DATA
    // [4] SNLID 0: list identifiers are not unique per nexus only.
    out.writeUInt16BE(XCOPY_LIMITS.cscdDescriptors, 8);
    out.writeUInt16BE(XCOPY_LIMITS.segmentDescriptors, 10);
    out.writeUInt32BE(XCOPY_LIMITS.descriptorListLength, 12);
    out.writeUInt32BE(XCOPY_LIMITS.segmentLength, 16);
    // [20] MAXIMUM INLINE DATA LENGTH 0, [24] HELD DATA LIMIT 0, [28] MAXIMUM STREAM DEVICE TRANSFER SIZE 0.
    out.writeUInt16BE(1, 34); // TOTAL CONCURRENT COPIES
    out[36] = 1; // MAXIMUM CONCURRENT COPIES
    out[37] = Math.log2(lu.blockSize); // DATA SEGMENT GRANULARITY (log2 bytes)
    out[43] = codes.length; // IMPLEMENTED DESCRIPTOR LIST LENGTH
    codes.forEach((code, i) => (out[44 + i] = code));
    return good(truncate(out, alloc));
  }
  // COPY STATUS: held data of a completed EXTENDED COPY on this I_T nexus with this list id.
  const s = lu.copyManager.take(req.nexus.id, c[2]!);
  if (s === undefined) return invalidFieldInCdb(2);
  const out = Buffer.alloc(12);
  out.writeUInt32BE(8, 0); // AVAILABLE DATA
  out[4] = s.status; // HDD 0, COPY MANAGER STATUS
  out.writeUInt16BE(Math.min(s.segmentsProcessed, 0xffff), 5);
  // TRANSFER COUNT UNITS: 00h bytes, F1h kibibytes when the byte count does not fit.
  const kib = s.transferred > 0xffffffff;
  out[7] = kib ? 0xf1 : 0x00;
  out.writeUInt32BE(kib ? Math.floor(s.transferred / 1024) : s.transferred, 8);
  return good(truncate(out, alloc));
}

/** The Third-party Copy VPD page (8Fh), SPC-4 §7.8.17: what this copy manager supports. */
export function thirdPartyCopyPage(): Buffer {
  const descriptor = (type: number, body: Buffer): Buffer => {
    const len = (body.length + 3) & ~3;
    const b = Buffer.alloc(4 + len);
    b.writeUInt16BE(type, 0);
    b.writeUInt16BE(len, 2);
    body.copy(b, 4);
    return b;
  };
  // Supported Commands (0001h): EXTENDED COPY LID1, RECEIVE COPY RESULTS COPY STATUS / OPERATING PARAMETERS.
  const cmds = Buffer.from([Op.EXTENDED_COPY, 1, 0x00, Op.RECEIVE_COPY_RESULTS, 2, RcrSa.COPY_STATUS, RcrSa.OPERATING_PARAMETERS]);
  const supportedCommands = descriptor(0x0001, Buffer.concat([Buffer.from([cmds.length]), cmds]));
  // Supported Descriptors (0004h): block→block segments, identification CSCDs.
  const supportedDescriptors = descriptor(0x0004, Buffer.from([2, SEGMENT_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION]));
  const body = Buffer.concat([supportedCommands, supportedDescriptors]);
  const page = Buffer.alloc(4 + body.length);
  page[1] = 0x8f;
  page.writeUInt16BE(body.length, 2);
  body.copy(page, 4);
  return page;
}

/**
 * EXTENDED COPY with a parameter list writes the medium of its copy destinations: a read-only
 * I_T nexus (or a read-only addressed LU) is refused before anything is parsed. Each segment's
 * destination is checked again as a WRITE would be (`copyTargetRefusal`).
 */
function extendedCopyModifies(cdb: Buffer): Modification {
  return cdb.readUInt32BE(10) === 0 ? 'nothing' : 'medium';
}

export const XCOPY_COMMANDS: readonly CommandDescriptor[] = [
  {
    name: 'EXTENDED COPY(LID1)',
    opcode: Op.EXTENDED_COPY,
    serviceAction: 0x00,
    usage: [Op.EXTENDED_COPY, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'write',
    modifies: extendedCopyModifies,
    handler: extendedCopy,
  },
  {
    name: 'RECEIVE COPY RESULTS (COPY STATUS)',
    opcode: Op.RECEIVE_COPY_RESULTS,
    serviceAction: RcrSa.COPY_STATUS,
    usage: [Op.RECEIVE_COPY_RESULTS, RcrSa.COPY_STATUS, 0xff, 0, 0, 0, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'read',
    modifies: 'nothing',
    handler: receiveCopyResults,
  },
  {
    name: 'RECEIVE COPY RESULTS (OPERATING PARAMETERS)',
    opcode: Op.RECEIVE_COPY_RESULTS,
    serviceAction: RcrSa.OPERATING_PARAMETERS,
    usage: [Op.RECEIVE_COPY_RESULTS, RcrSa.OPERATING_PARAMETERS, 0, 0, 0, 0, 0, 0, 0, 0, ...FIELD32_USAGE, 0, CONTROL_USAGE],
    reservation: 'allowed',
    modifies: 'nothing',
    handler: receiveCopyResults,
  },
];
