/**
 * SCSI commands and their answers for the gluster suites, over the scriptable initiator: CDBs,
 * self-describing blocks, and `Answers`, which keeps every response by ITT so that several
 * commands (on several LUNs, task management, logout) can be outstanding at once.
 */
import { Opcode } from '../../src/pdu/opcodes.js';
import type { Pdu } from '../../src/pdu/pdu.js';
import type { TestInitiator } from '../support/test-initiator.js';

export const BLOCK = 512;

/** A command's outcome: SCSI status and sense key/ASC/ASCQ, its Data-In; for TMF and Logout, the response code. */
export interface Answer { opcode: number; status: number; key: number; asc: number; ascq: number; response: number; data: Buffer }
export const senseOf = (a: Answer) => `${a.status}:${a.key.toString(16)}/${a.asc.toString(16)}/${a.ascq.toString(16)}`;

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
export const write10 = (lba: number, blocks = 1) => Buffer.from([0x2a, 0, ...u32(lba), 0, 0, blocks, 0]);
export const read10 = (lba: number) => Buffer.from([0x28, 0, ...u32(lba), 0, 0, 1, 0]);
export const SYNC10 = Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
export const INQUIRY = Buffer.from([0x12, 0, 0, 0, 96, 0]);
export const TEST_UNIT_READY = Buffer.alloc(6);

/** Block `lba` of generation `gen`: self-describing, so a wrong or stale block is recognised. */
export const block = (lba: number, gen: number) => {
  const b = Buffer.alloc(BLOCK, gen & 0xff);
  b.writeUInt32BE(lba, 0);
  b.writeUInt32BE(gen, 4);
  return b;
};

/** Send a command (small Data-Out as immediate data) without waiting: its ITT. */
export async function send(ini: TestInitiator, cdb: Buffer, o: { lun?: number; out?: Buffer; inLen?: number } = {}): Promise<number> {
  const itt = ini.itt;
  const header = ini.commandHeader(cdb, { read: (o.inLen ?? 0) > 0, write: o.out !== undefined, edtl: o.out?.length ?? o.inLen ?? 0, lun: o.lun ?? 0 });
  await ini.sendPdu(header, o.out ?? Buffer.alloc(0));
  return itt;
}

/** The responses of one session, kept by ITT as they arrive. */
export class Answers {
  private readonly done = new Map<number, Answer>();
  private readonly dataIn = new Map<number, Buffer[]>();

  constructor(readonly ini: TestInitiator) {}

  /** The answer to `itt`, waiting at most `timeoutMs` (rejects then, or when the connection closes). */
  async of(itt: number, timeoutMs: number): Promise<Answer> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const a = this.done.get(itt);
      if (a !== undefined) return a;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no answer to ITT ${itt} within ${timeoutMs} ms`);
      const pdu = await this.ini.next(left).catch(() => undefined);
      if (pdu === null) throw new Error(`connection closed before ITT ${itt} was answered`);
      if (pdu !== undefined) this.file(pdu);
    }
  }

  /** Whether `itt` has been answered by now (reading what already arrived, for up to `ms`). */
  async answered(itt: number, ms: number): Promise<boolean> {
    return this.of(itt, ms).then(() => true, () => false);
  }

  private file(pdu: Pdu): void {
    const itt = pdu.itt;
    const blank = { opcode: pdu.opcode, status: 0, key: 0, asc: 0, ascq: 0, response: 0, data: Buffer.alloc(0) };
    switch (pdu.opcode) {
      case Opcode.DataIn: {
        const parts = this.dataIn.get(itt) ?? [];
        parts.push(Buffer.from(pdu.data));
        this.dataIn.set(itt, parts);
        if ((pdu.flags & 0x01) !== 0) this.done.set(itt, { ...blank, status: pdu.bhs[3]!, data: this.take(itt) });
        return;
      }
      case Opcode.ScsiResponse: {
        const s = pdu.data.length >= 2 ? pdu.data.subarray(2, 2 + pdu.data.readUInt16BE(0)) : null;
        this.done.set(itt, { ...blank, status: pdu.bhs[3]!, key: s ? s[2]! & 0x0f : 0, asc: s ? s[12]! : 0, ascq: s ? s[13]! : 0, data: this.take(itt) });
        return;
      }
      case Opcode.TaskMgmtResponse:
      case Opcode.LogoutResponse:
      case Opcode.Reject:
        this.done.set(itt, { ...blank, response: pdu.bhs[2]! });
        return;
    }
  }

  private take(itt: number): Buffer {
    const parts = this.dataIn.get(itt) ?? [];
    this.dataIn.delete(itt);
    return Buffer.concat(parts);
  }

  /** One command and its answer, past unit attentions (as initiators retry them). */
  async cmd(cdb: Buffer, o: { lun?: number; out?: Buffer; inLen?: number } = {}, timeoutMs = 60_000): Promise<Answer> {
    for (let i = 0; ; i++) {
      const a = await this.of(await send(this.ini, cdb, o), timeoutMs);
      if (a.status !== 2 || a.key !== 6 || i >= 8) return a;
    }
  }
}
