import type { BlockBackend } from '../backend/block-backend.js';
import { BAD_SERVICE_ACTION, type CommandTable, type DeviceContext } from './command-table.js';
import { COMMANDS } from './commands.js';
import type { ModeUnit } from './mode-pages.js';
import {
  Asc,
  SenseKey,
  checkCondition,
  internalTargetFailure,
  invalidFieldInCdb,
  invalidOpcode,
  writeError,
} from './sense.js';
import type { ScsiRequest, ScsiResponse } from './types.js';
import { UnitAttentions } from './unit-attention.js';
import type { InquiryIdentity } from './vpd.js';

/** Largest data transfer of one READ/WRITE/VERIFY, reported in the Block Limits VPD page. */
export const MAX_TRANSFER_BYTES = 8 * 1024 * 1024;

export interface LogicalUnitOptions {
  lun: number;
  backend: BlockBackend;
  blockSize: number;
  readOnly: boolean;
  /** Initial (and default) WCE; MODE SELECT may change the current value. */
  writeCache: boolean;
  serial: string;
  /** 32 hex digits, NAA 6 (IEEE Registered Extended). */
  naa: string;
  vendor: string;
  product: string;
  revision: string;
  targetName: string;
  /** When set, VPD 83h also carries the target port designators for this portal group. */
  targetPortalGroupTag?: number;
}

/**
 * Commands that neither report nor clear a pending unit attention (SAM-5 §5.14): INQUIRY,
 * REPORT LUNS and REQUEST SENSE (which returns the UA as its parameter data and so clears it).
 */
const UA_EXEMPT = new Uint8Array(256);
UA_EXEMPT[0x12] = 1;
UA_EXEMPT[0xa0] = 1;
UA_EXEMPT[0x03] = 1;

/** One logical unit: a block device (SBC-3, peripheral device type 00h) over a BlockBackend. */
export class LogicalUnit implements ModeUnit, InquiryIdentity {
  readonly lun: number;
  readonly backend: BlockBackend;
  readonly blockSize: number;
  /** Capacity in logical blocks. */
  readonly blocks: number;
  readonly readOnly: boolean;
  readonly defaultWriteCache: boolean;
  readonly serial: string;
  readonly naa: string;
  readonly naaBytes: Buffer;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  readonly targetName: string;
  readonly targetPortalGroupTag?: number;
  readonly maxTransferBlocks: number;
  readonly unitAttentions = new UnitAttentions();
  readonly commands: CommandTable = COMMANDS;

  private wce: boolean;

  constructor(opts: LogicalUnitOptions) {
    const bs = opts.blockSize;
    if (!Number.isInteger(bs) || bs < 512 || bs > 65536 || (bs & (bs - 1)) !== 0) {
      throw new Error(`LUN ${opts.lun}: block size ${bs} is not a power of two in 512..65536`);
    }
    if (!/^6[0-9a-fA-F]{31}$/.test(opts.naa)) {
      throw new Error(`LUN ${opts.lun}: NAA "${opts.naa}" is not 32 hex digits starting with 6`);
    }
    const blocks = Math.floor(opts.backend.sizeBytes / bs);
    if (blocks < 1) throw new Error(`LUN ${opts.lun}: backend is smaller than one block`);
    this.lun = opts.lun;
    this.backend = opts.backend;
    this.blockSize = bs;
    this.blocks = blocks;
    this.readOnly = opts.readOnly;
    this.wce = opts.writeCache;
    this.defaultWriteCache = opts.writeCache;
    this.serial = opts.serial;
    this.naa = opts.naa.toLowerCase();
    this.naaBytes = Buffer.from(this.naa, 'hex');
    this.vendor = opts.vendor;
    this.product = opts.product;
    this.revision = opts.revision;
    this.targetName = opts.targetName;
    if (opts.targetPortalGroupTag !== undefined) this.targetPortalGroupTag = opts.targetPortalGroupTag;
    this.maxTransferBlocks = Math.max(1, Math.floor(MAX_TRANSFER_BYTES / bs));
  }

  /** Current WCE: with false, every write is made durable before GOOD status. */
  get writeCache(): boolean {
    return this.wce;
  }

  /**
   * Execute one command for this LU. Never rejects: failures become CHECK CONDITION.
   * Order (SAM-5 §5.14): a pending unit attention is reported before the CDB is even decoded.
   */
  async execute(req: ScsiRequest, dev: DeviceContext): Promise<ScsiResponse> {
    try {
      const cdb = req.cdb;
      const op = cdb[0] ?? 0;
      const ua = this.unitAttentions.queueFor(req.nexus.id);
      if (ua.length !== 0 && UA_EXEMPT[op] === 0) {
        const code = ua.shift()!;
        return checkCondition(SenseKey.UNIT_ATTENTION, code >> 8, code & 0xff);
      }
      const d = this.commands.lookup(cdb);
      if (d === undefined) return invalidOpcode();
      if (d === BAD_SERVICE_ACTION) return invalidFieldInCdb(1, 4);
      const control = d.usage.length - 1;
      if (cdb.length <= control) return invalidFieldInCdb(0);
      // NACA = 1 asks for ACA, which this device server does not support: SAM-5 (CONTROL byte)
      // requires ILLEGAL REQUEST / INVALID FIELD IN CDB.
      if (cdb[control]! & 0x04) return invalidFieldInCdb(control, 2);
      return await d.handler(this, req, dev);
    } catch {
      return internalTargetFailure();
    }
  }

  /** MODE SELECT changed WCE (ModeUnit). */
  async changeWriteCache(wce: boolean, nexusId: string): Promise<ScsiResponse | undefined> {
    this.wce = wce;
    // SPC-4 §5.9 / §6.11: parameters shared by all I_T nexuses changed → MODE PARAMETERS CHANGED
    // for every other nexus.
    this.unitAttentions.establish(Asc.MODE_PARAMETERS_CHANGED, nexusId);
    if (!wce) {
      // Writes acknowledged while the cache was on become durable before we report the change.
      try {
        await this.backend.flush();
      } catch (err) {
        return writeError(err);
      }
    }
    return undefined;
  }

  /** Logical unit reset or hard reset: `code` becomes the unit attention for every known nexus. */
  reset(code: number): void {
    this.unitAttentions.establish(code);
  }
}
