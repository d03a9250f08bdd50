import { truncate, writeU64 } from './cdb.js';
import {
  Asc,
  SenseKey,
  good,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  senseError,
} from './sense.js';
import type { ScsiRequest, ScsiResponse } from './types.js';
import type { ItNexus } from './nexus.js';

/** What MODE SENSE / MODE SELECT need from a logical unit. */
export interface ModeUnit {
  readonly blocks: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly writeCache: boolean;
  readonly defaultWriteCache: boolean;
  /** Apply a new WCE value on behalf of `nexusId` (flush, unit attentions to the other nexuses). */
  changeWriteCache(wce: boolean, issuer: ItNexus): Promise<ScsiResponse | undefined>;
}

/** PAGE CONTROL field values (SPC-4 §6.13, MODE SENSE(6)). */
export const PageControl = { CURRENT: 0, CHANGEABLE: 1, DEFAULT: 2, SAVED: 3 } as const;

export const ModePage = { CACHING: 0x08, CONTROL: 0x0a, INFORMATIONAL_EXCEPTIONS: 0x1c, ALL: 0x3f } as const;

/** Implemented pages in ascending page code order (SPC-4 §6.13: 3Fh returns pages in that order). */
const PAGES = [ModePage.CACHING, ModePage.CONTROL, ModePage.INFORMATIONAL_EXCEPTIONS];

/** Page contents (page_0 format: code, length, parameters) for a page control value. */
export function modePage(u: ModeUnit, code: number, pc: number): Buffer | undefined {
  switch (code) {
    case ModePage.CACHING: {
      // SBC-3 §6.4.5 Caching mode page, 14h bytes. Only WCE (byte 2 bit 2) is changeable;
      // RCD = 0 (the read cache is the host page cache; reads always go to the file).
      const p = Buffer.alloc(0x14);
      p[0] = 0x08;
      p[1] = 0x12;
      if (pc === PageControl.CHANGEABLE) p[2] = 0x04;
      else if (pc === PageControl.DEFAULT ? u.defaultWriteCache : u.writeCache) p[2] = 0x04;
      return p;
    }
    case ModePage.CONTROL: {
      // SPC-4 §7.5.8 Control mode page, 0Ch bytes, nothing changeable: TST 000b (one task set),
      // D_SENSE 0 (fixed sense), QUEUE ALGORITHM MODIFIER 1 (unrestricted reordering: commands
      // complete out of order), QERR 00b, UA_INTLCK_CTRL 00b, SWP 0, busy timeout unset.
      // TAS 1: tasks aborted by another I_T nexus' task management (or PREEMPT AND ABORT) end
      // with TASK ABORTED status, which is what the iSCSI layer sends them.
      const p = Buffer.alloc(0x0c);
      p[0] = 0x0a;
      p[1] = 0x0a;
      if (pc !== PageControl.CHANGEABLE) {
        p[3] = 0x10;
        p[5] = 0x40; // TAS
      }
      return p;
    }
    case ModePage.INFORMATIONAL_EXCEPTIONS: {
      // SPC-4 §7.5 Informational Exceptions Control mode page, 0Ch bytes: DEXCPT = 1 (no failure
      // prediction), MRIE 0. Nothing changeable.
      const p = Buffer.alloc(0x0c);
      p[0] = 0x1c;
      p[1] = 0x0a;
      if (pc !== PageControl.CHANGEABLE) p[2] = 0x08;
      return p;
    }
    default:
      return undefined;
  }
}

/** MODE SENSE(6) / MODE SENSE(10), SPC-4 §6.13 / §6.14. */
export function modeSense(u: ModeUnit, req: ScsiRequest, ten: boolean): ScsiResponse {
  const cdb = req.cdb;
  const dbd = (cdb[1]! & 0x08) !== 0;
  const llbaa = ten && (cdb[1]! & 0x10) !== 0;
  const pc = cdb[2]! >> 6;
  const pageCode = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  const alloc = ten ? cdb.readUInt16BE(7) : cdb[4]!;

  // SPC-4 §6.13: saved values not implemented → SAVING PARAMETERS NOT SUPPORTED.
  if (pc === PageControl.SAVED) {
    return senseError(SenseKey.ILLEGAL_REQUEST, Asc.SAVING_PARAMETERS_NOT_SUPPORTED);
  }
  // Only page_0 pages exist: subpage 00h, or FFh (all subpages, which here is just subpage 0).
  if (subpage !== 0x00 && subpage !== 0xff) return invalidFieldInCdb(3);

  const pages: Buffer[] = [];
  if (pageCode === ModePage.ALL) {
    for (const code of PAGES) pages.push(modePage(u, code, pc)!);
  } else {
    const p = modePage(u, pageCode, pc);
    if (!p) return invalidFieldInCdb(2, 5);
    pages.push(p);
  }

  let bd: Buffer | undefined;
  if (!dbd) {
    if (llbaa) {
      // SBC-3 §6.4.2.3 long LBA mode parameter block descriptor.
      bd = Buffer.alloc(16);
      if (pc !== PageControl.CHANGEABLE) {
        writeU64(bd, u.blocks, 0);
        bd.writeUInt32BE(u.blockSize, 12);
      }
    } else {
      // SBC-3 §6.4.2.2 short LBA descriptor: FFFFFFFFh when the capacity does not fit.
      bd = Buffer.alloc(8);
      if (pc !== PageControl.CHANGEABLE) {
        bd.writeUInt32BE(u.blocks > 0xffffffff ? 0xffffffff : u.blocks, 0);
        bd.writeUIntBE(u.blockSize, 5, 3);
      }
    }
  }

  const hdrLen = ten ? 8 : 4;
  const bdLen = bd ? bd.length : 0;
  let total = hdrLen + bdLen;
  for (const p of pages) total += p.length;
  const out = Buffer.alloc(total);
  // SBC-3 §6.4.1 device-specific parameter: WP when writes are refused for this nexus, DPOFUA.
  const dsp = (u.readOnly || req.nexus.readOnly ? 0x80 : 0) | 0x10;
  if (ten) {
    out.writeUInt16BE(total - 2, 0); // MODE DATA LENGTH excludes itself, never truncated
    out[3] = dsp;
    out[4] = llbaa && bd ? 0x01 : 0; // LONGLBA
    out.writeUInt16BE(bdLen, 6);
  } else {
    out[0] = total - 1;
    out[2] = dsp;
    out[3] = bdLen;
  }
  let o = hdrLen;
  if (bd) o += bd.copy(out, o);
  for (const p of pages) o += p.copy(out, o);
  return good(truncate(out, alloc));
}

/** MODE SELECT(6) / MODE SELECT(10), SPC-4 §6.11 / §6.12. */
export async function modeSelect(u: ModeUnit, req: ScsiRequest, ten: boolean): Promise<ScsiResponse> {
  const cdb = req.cdb;
  const pf = (cdb[1]! & 0x10) !== 0;
  const sp = (cdb[1]! & 0x01) !== 0;
  const listLen = ten ? cdb.readUInt16BE(7) : cdb[4]!;
  // No savable pages: SP = 1 is an invalid field (SPC-4 §6.11).
  if (sp) return invalidFieldInCdb(1, 0);
  // A zero-length parameter list is not an error (SPC-4 §6.11).
  if (listLen === 0) return good();
  // PF = 0 means vendor-specific page format, which this device does not define.
  if (!pf) return invalidFieldInCdb(1, 4);

  const data = req.dataOut;
  if (!data || data.length < listLen) {
    // The transport delivered less than the CDB announced (EDTL shorter than the parameter list).
    return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_INFORMATION_UNIT);
  }
  const list = data.subarray(0, listLen);
  const hdrLen = ten ? 8 : 4;
  if (list.length < hdrLen) return parameterListLengthError();

  const longLba = ten && (list[4]! & 0x01) !== 0;
  const bdLen = ten ? list.readUInt16BE(6) : list[3]!;
  const bdField = ten ? 6 : 3;
  if (bdLen !== 0 && bdLen !== (longLba ? 16 : 8)) return invalidFieldInParameterList(bdField);
  if (hdrLen + bdLen > list.length) return parameterListLengthError();
  if (bdLen) {
    // SBC-3 §6.4.2: capacity and block length are not changeable. Accept the current values
    // (or zero blocks = "no change").
    const b = list.subarray(hdrLen, hdrLen + bdLen);
    const blocks = longLba ? b.readUInt32BE(0) * 0x1_0000_0000 + b.readUInt32BE(4) : b.readUInt32BE(0);
    const blockLength = longLba ? b.readUInt32BE(12) : b.readUIntBE(5, 3);
    const current = !longLba && u.blocks > 0xffffffff ? 0xffffffff : u.blocks;
    if (blocks !== 0 && blocks !== current) return invalidFieldInParameterList(hdrLen);
    if (blockLength !== u.blockSize) return invalidFieldInParameterList(hdrLen + (longLba ? 12 : 5));
  }

  let wce = u.writeCache;
  let o = hdrLen + bdLen;
  while (o < list.length) {
    if (list.length - o < 2) return parameterListLengthError();
    const b0 = list[o]!;
    if (b0 & 0x40) return invalidFieldInParameterList(o, 6); // SPF: no subpages here
    const code = b0 & 0x3f;
    const len = list[o + 1]!;
    if (o + 2 + len > list.length) return parameterListLengthError();
    const current = modePage(u, code, PageControl.CURRENT);
    if (!current) return invalidFieldInParameterList(o, 5);
    if (len !== current.length - 2) return invalidFieldInParameterList(o + 1);
    const changeable = modePage(u, code, PageControl.CHANGEABLE)!;
    // Every bit outside the changeable mask must keep its current value (SPC-4 §6.11:
    // INVALID FIELD IN PARAMETER LIST otherwise). The PS bit (byte 0 bit 7) is reserved here.
    for (let i = 2; i < current.length; i++) {
      const diff = (list[o + i]! ^ current[i]!) & ~changeable[i]! & 0xff;
      if (diff) return invalidFieldInParameterList(o + i, 31 - Math.clz32(diff));
    }
    if (code === ModePage.CACHING) wce = (list[o + 2]! & 0x04) !== 0;
    o += 2 + len;
  }

  if (wce !== u.writeCache) {
    const r = await u.changeWriteCache(wce, req.nexus);
    if (r) return r;
  }
  return good();
}
