import { Opcode } from './opcodes.js';

/**
 * One received or to-be-sent iSCSI PDU (RFC 7143 §11.2): the 48-byte Basic Header Segment,
 * optional Additional Header Segments and the data segment (without padding or digests).
 * Getters read BHS fields in place; nothing is decoded until asked for.
 */
export class Pdu {
  /** Set when the data segment failed its digest and was dropped (the header is intact). */
  dataDigestFailed = false;

  constructor(
    readonly bhs: Buffer,
    readonly ahs: Buffer | null,
    readonly data: Buffer,
  ) {}

  get opcode(): Opcode { return this.bhs[0]! & 0x3f; }
  /** I bit: immediate delivery (request opcodes only). */
  get immediate(): boolean { return (this.bhs[0]! & 0x40) !== 0; }
  /** F bit (final). For Login/Text it is T (transit) / F respectively. */
  get final(): boolean { return (this.bhs[1]! & 0x80) !== 0; }
  get flags(): number { return this.bhs[1]!; }
  get totalAhsLength(): number { return this.bhs[4]! * 4; }
  get dataSegmentLength(): number { return (this.bhs[5]! << 16) | (this.bhs[6]! << 8) | this.bhs[7]!; }
  get lunField(): Buffer { return this.bhs.subarray(8, 16); }
  get itt(): number { return this.bhs.readUInt32BE(16); }
  /** Target Transfer Tag (NOP-Out, Data-Out, Text), or Referenced Task Tag for TMF requests. */
  get word20(): number { return this.bhs.readUInt32BE(20); }
  /** CmdSN for requests (word at offset 24). */
  get cmdSN(): number { return this.bhs.readUInt32BE(24); }
  /** ExpStatSN for requests (offset 28). */
  get expStatSN(): number { return this.bhs.readUInt32BE(28); }

  // SCSI Command (§11.3)
  get readFlag(): boolean { return (this.bhs[1]! & 0x40) !== 0; }
  get writeFlag(): boolean { return (this.bhs[1]! & 0x20) !== 0; }
  get taskAttribute(): number { return this.bhs[1]! & 0x07; }
  get expectedDataTransferLength(): number { return this.bhs.readUInt32BE(20); }
  get cdb(): Buffer { return this.bhs.subarray(32, 48); }

  // SCSI Data-Out (§11.7)
  get targetTransferTag(): number { return this.bhs.readUInt32BE(20); }
  get dataSN(): number { return this.bhs.readUInt32BE(36); }
  get bufferOffset(): number { return this.bhs.readUInt32BE(40); }

  // Task Management Function Request (§11.5)
  get tmfFunction(): number { return this.bhs[1]! & 0x7f; }
  get referencedTaskTag(): number { return this.bhs.readUInt32BE(20); }
  get refCmdSN(): number { return this.bhs.readUInt32BE(32); }
  get expDataSN(): number { return this.bhs.readUInt32BE(36); }

  // Login Request (§11.12)
  get loginTransit(): boolean { return (this.bhs[1]! & 0x80) !== 0; }
  get loginContinue(): boolean { return (this.bhs[1]! & 0x40) !== 0; }
  get loginCsg(): number { return (this.bhs[1]! >> 2) & 0x03; }
  get loginNsg(): number { return this.bhs[1]! & 0x03; }
  get versionMax(): number { return this.bhs[2]!; }
  get versionMin(): number { return this.bhs[3]!; }
  /** The 6-byte ISID as a 12-digit hex string. */
  get isid(): string { return this.bhs.toString('hex', 8, 14); }
  get tsih(): number { return this.bhs.readUInt16BE(14); }
  get cid(): number { return this.bhs.readUInt16BE(20); }

  // Text Request (§11.10)
  get textContinue(): boolean { return (this.bhs[1]! & 0x40) !== 0; }

  // Logout Request (§11.14)
  get logoutReason(): number { return this.bhs[1]! & 0x7f; }
  get logoutCid(): number { return this.bhs.readUInt16BE(20); }

  // Responses (target → initiator), used by tests and tools that act as initiators.
  get statSN(): number { return this.bhs.readUInt32BE(24); }
  get expCmdSN(): number { return this.bhs.readUInt32BE(28); }
  get maxCmdSN(): number { return this.bhs.readUInt32BE(32); }
  get responseStatusClass(): number { return this.bhs[36]!; }
  get responseStatusDetail(): number { return this.bhs[37]!; }
}
