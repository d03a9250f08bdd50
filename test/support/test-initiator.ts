/**
 * A small scriptable iSCSI initiator for protocol tests: it speaks through the same framer
 * as the server but builds every request PDU by hand, so tests can choose negotiation keys,
 * split PDUs across arbitrary TCP writes, send malformed PDUs and observe raw responses.
 */
import net from 'node:net';
import { BufferPool } from '../../src/pdu/buffer-pool.js';
import { PduFramer } from '../../src/pdu/framer.js';
import { computeDigest } from '../../src/pdu/digest.js';
import { Opcode } from '../../src/pdu/opcodes.js';
import type { Pdu } from '../../src/pdu/pdu.js';
import { decodeText, encodeText } from '../../src/pdu/text.js';

export interface LoginOptions {
  initiatorName?: string;
  targetName?: string;
  sessionType?: 'Normal' | 'Discovery';
  isid?: Buffer;
  /** Operational keys to offer (overrides the defaults below). */
  keys?: Record<string, string>;
}

export interface Negotiated {
  status: number;
  keys: Map<string, string>;
  tsih: number;
}

export class TestInitiator {
  readonly socket: net.Socket;
  private readonly framer: PduFramer;
  private readonly queue: Pdu[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  cmdSN = 1;
  expStatSN = 0;
  itt = 1;
  headerDigest = false;
  dataDigest = false;
  /** When set, every PDU is written in pieces of these sizes (cycled), with a pause between. */
  split: number[] | null = null;
  negotiated = new Map<string, string>();
  /** LUN of commands and Data-Out that name none (read10, write10, …). */
  lun = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.framer = new PduFramer(
      (pdu) => {
        this.queue.push(pdu);
        for (const w of this.waiters.splice(0)) w();
      },
      () => this.socket.destroy(),
      new BufferPool(),
    );
    this.framer.maxDataSegmentLength = 16 * 1024 * 1024;
    socket.on('data', (c: Buffer) => this.framer.push(c));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
  }

  /** Connect to the target; `localAddress` picks the source address (e.g. 127.0.0.2: another host). */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<TestInitiator> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, ...(localAddress !== undefined ? { localAddress } : {}) }, () => resolve(new TestInitiator(s)));
      s.setNoDelay(true);
      s.once('error', reject);
    });
  }

  /** Wait for the next PDU (or null when the connection closed). */
  async next(timeoutMs = 5000): Promise<Pdu | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a PDU');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    const pdu = this.queue.shift()!;
    if (pdu.opcode !== Opcode.DataIn && pdu.opcode !== Opcode.R2T) this.expStatSN = (pdu.statSN + 1) >>> 0;
    else if (pdu.opcode === Opcode.DataIn && (pdu.flags & 0x01) !== 0) this.expStatSN = (pdu.statSN + 1) >>> 0;
    return pdu;
  }

  /** Resolves true when the server closes the connection within the timeout. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      this.queue.length = 0;
    }
    return this.closed;
  }

  /** Serialise and send one PDU (header digest / data digest as negotiated). */
  async sendPdu(bhs: Buffer, data: Buffer = Buffer.alloc(0)): Promise<void> {
    bhs[5] = (data.length >>> 16) & 0xff;
    bhs[6] = (data.length >>> 8) & 0xff;
    bhs[7] = data.length & 0xff;
    const parts: Buffer[] = [bhs];
    if (this.headerDigest) {
      const d = Buffer.alloc(4);
      d.writeUInt32LE(computeDigest(bhs), 0);
      parts.push(d);
    }
    if (data.length > 0) {
      const pad = Buffer.alloc((4 - (data.length % 4)) % 4);
      parts.push(data, pad);
      if (this.dataDigest) {
        const d = Buffer.alloc(4);
        d.writeUInt32LE(computeDigest(Buffer.concat([data, pad])), 0);
        parts.push(d);
      }
    }
    await this.writeRaw(Buffer.concat(parts));
  }

  async writeRaw(buf: Buffer): Promise<void> {
    if (this.split === null) {
      this.socket.write(buf);
      return;
    }
    let off = 0;
    let i = 0;
    while (off < buf.length) {
      const n = Math.max(1, this.split[i++ % this.split.length]!);
      this.socket.write(buf.subarray(off, off + n));
      off += n;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Full login: security stage (AuthMethod=None) then operational stage to full feature phase. */
  async login(opts: LoginOptions = {}): Promise<Negotiated> {
    const isid = opts.isid ?? Buffer.from([0x80, 0x00, 0x00, 0x00, 0x00, 0x01]);
    const type = opts.sessionType ?? 'Normal';
    const first: Array<[string, string]> = [
      ['InitiatorName', opts.initiatorName ?? 'iqn.2007-10.com.example:test-initiator'],
      ['SessionType', type],
    ];
    if (type === 'Normal') first.push(['TargetName', opts.targetName ?? 'iqn.2016-06.org.gluster:test']);
    first.push(['AuthMethod', 'None']);
    let res = await this.loginStep(isid, 0, 0, 1, true, first);
    if (res.status !== 0) return res;
    const keys: Record<string, string> = {
      HeaderDigest: 'None', DataDigest: 'None', MaxRecvDataSegmentLength: '262144',
      ...(type === 'Normal'
        ? { InitialR2T: 'No', ImmediateData: 'Yes', MaxBurstLength: '262144', FirstBurstLength: '65536', MaxOutstandingR2T: '1', ErrorRecoveryLevel: '0', MaxConnections: '1' }
        : {}),
      ...opts.keys,
    };
    const merged = new Map(res.keys);
    res = await this.loginStep(isid, res.tsih, 1, 3, true, Object.entries(keys));
    for (const [k, v] of res.keys) merged.set(k, v);
    this.negotiated = merged;
    this.headerDigest = merged.get('HeaderDigest') === 'CRC32C';
    this.dataDigest = merged.get('DataDigest') === 'CRC32C';
    this.framer.headerDigest = this.headerDigest;
    this.framer.dataDigest = this.dataDigest;
    return { ...res, keys: merged };
  }

  async loginStep(isid: Buffer, tsih: number, csg: number, nsg: number, transit: boolean, pairs: Array<[string, string]>): Promise<Negotiated> {
    const h = Buffer.alloc(48);
    h[0] = 0x40 | Opcode.LoginRequest;
    h[1] = (transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0);
    isid.copy(h, 8);
    h.writeUInt16BE(tsih, 14);
    h.writeUInt32BE(this.itt, 16);
    h.writeUInt32BE(this.cmdSN, 24);
    h.writeUInt32BE(this.expStatSN, 28);
    await this.sendPdu(h, encodeText(pairs));
    const res = await this.next();
    if (res === null) throw new Error('connection closed during login');
    if (res.opcode !== Opcode.LoginResponse) throw new Error(`expected Login Response, got 0x${res.opcode.toString(16)}`);
    const status = (res.responseStatusClass << 8) | res.responseStatusDetail;
    return { status, keys: new Map(decodeText(res.data)), tsih: res.tsih };
  }

  /** Build a SCSI Command BHS. */
  commandHeader(cdb: Buffer, opts: { read?: boolean; write?: boolean; edtl: number; final?: boolean; immediate?: boolean; lun?: number; itt?: number }): Buffer {
    const h = Buffer.alloc(48);
    h[0] = (opts.immediate ? 0x40 : 0) | Opcode.ScsiCommand;
    h[1] = (opts.final === false ? 0 : 0x80) | (opts.read ? 0x40 : 0) | (opts.write ? 0x20 : 0) | 0x01; // SIMPLE
    h[9] = opts.lun ?? this.lun;
    h.writeUInt32BE(opts.itt ?? this.itt++, 16);
    h.writeUInt32BE(opts.edtl, 20);
    h.writeUInt32BE(this.cmdSN, 24);
    if (!opts.immediate) this.cmdSN = (this.cmdSN + 1) >>> 0;
    h.writeUInt32BE(this.expStatSN, 28);
    cdb.copy(h, 32, 0, Math.min(16, cdb.length));
    return h;
  }

  /**
   * Task Management Function Request BHS (RFC 7143 §11.5): function `fn` (1 ABORT TASK, 5 LOGICAL
   * UNIT RESET, …) on `lun`, for ABORT TASK the referenced task's ITT and CmdSN. Immediate.
   */
  tmfHeader(fn: number, o: { refItt?: number; refCmdSN?: number; lun?: number } = {}): Buffer {
    const h = Buffer.alloc(48);
    h[0] = 0x40 | Opcode.TaskMgmtRequest;
    h[1] = 0x80 | fn;
    h[9] = o.lun ?? 0;
    h.writeUInt32BE(this.itt++, 16);
    h.writeUInt32BE(o.refItt ?? 0xffffffff, 20);
    h.writeUInt32BE(this.cmdSN, 24);
    h.writeUInt32BE(this.expStatSN, 28);
    h.writeUInt32BE(o.refCmdSN ?? 0, 32);
    return h;
  }

  dataOutHeader(itt: number, ttt: number, dataSN: number, offset: number, final: boolean, lun = this.lun): Buffer {
    const h = Buffer.alloc(48);
    h[0] = Opcode.DataOut;
    h[1] = final ? 0x80 : 0;
    h[9] = lun;
    h.writeUInt32BE(itt, 16);
    h.writeUInt32BE(ttt, 20);
    h.writeUInt32BE(this.expStatSN, 28);
    h.writeUInt32BE(dataSN, 36);
    h.writeUInt32BE(offset, 40);
    return h;
  }

  /** Collect the Data-In payload and final status of one command. */
  async collect(itt: number, timeoutMs = 10_000): Promise<{ status: number; data: Buffer; sense: Buffer | null; residual: number; flags: number; pdus: Pdu[] }> {
    const chunks: Array<{ offset: number; data: Buffer }> = [];
    const pdus: Pdu[] = [];
    for (;;) {
      const pdu = await this.next(timeoutMs);
      if (pdu === null) throw new Error('connection closed while waiting for a response');
      pdus.push(pdu);
      if (pdu.itt !== itt) continue;
      if (pdu.opcode === Opcode.DataIn) {
        chunks.push({ offset: pdu.bufferOffset, data: Buffer.from(pdu.data) });
        if ((pdu.flags & 0x01) !== 0) {
          return { status: pdu.bhs[3]!, data: assemble(chunks), sense: null, residual: pdu.bhs.readUInt32BE(44), flags: pdu.flags, pdus };
        }
      } else if (pdu.opcode === Opcode.ScsiResponse) {
        const sense = pdu.data.length >= 2 ? pdu.data.subarray(2, 2 + pdu.data.readUInt16BE(0)) : null;
        return { status: pdu.bhs[3]!, data: assemble(chunks), sense, residual: pdu.bhs.readUInt32BE(44), flags: pdu.flags, pdus };
      } else if (pdu.opcode === Opcode.Reject) {
        throw new Error(`command rejected, reason 0x${pdu.bhs[2]!.toString(16)}`);
      }
    }
  }

  /** TEST UNIT READY until GOOD, as initiators do after login to consume unit attentions. */
  async clearUnitAttentions(): Promise<Buffer[]> {
    const senses: Buffer[] = [];
    for (let i = 0; i < 8; i++) {
      const itt = this.itt;
      await this.sendPdu(this.commandHeader(Buffer.alloc(6), { edtl: 0 }));
      const r = await this.collect(itt);
      if (r.status === 0) return senses;
      if (r.sense !== null) senses.push(Buffer.from(r.sense));
    }
    throw new Error('unit attentions do not clear');
  }

  /** READ(10) through the full data path. */
  async read10(lba: number, blocks: number, blockSize = 512): Promise<Buffer> {
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x28;
    cdb.writeUInt32BE(lba, 2);
    cdb.writeUInt16BE(blocks, 7);
    const itt = this.itt;
    await this.sendPdu(this.commandHeader(cdb, { read: true, edtl: blocks * blockSize }));
    const r = await this.collect(itt);
    if (r.status !== 0) throw new Error(`READ(10) status 0x${r.status.toString(16)}`);
    return r.data;
  }

  /**
   * WRITE(10) honouring the negotiated ImmediateData, InitialR2T, FirstBurstLength,
   * MaxRecvDataSegmentLength (the target's) and answering R2Ts.
   */
  async write10(lba: number, data: Buffer, blockSize = 512): Promise<{ status: number; sense: Buffer | null }> {
    const n = this.negotiated;
    const immediateData = n.get('ImmediateData') === 'Yes';
    const initialR2T = n.get('InitialR2T') !== 'No';
    const firstBurst = Number(n.get('FirstBurstLength') ?? 65536);
    const maxSeg = Number(n.get('MaxRecvDataSegmentLength') ?? 8192);
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x2a;
    cdb.writeUInt32BE(lba, 2);
    cdb.writeUInt16BE(data.length / blockSize, 7);
    const itt = this.itt;
    const unsolicitedTotal = initialR2T ? (immediateData ? Math.min(firstBurst, maxSeg, data.length) : 0) : Math.min(firstBurst, data.length);
    const immediateLen = immediateData ? Math.min(unsolicitedTotal, maxSeg) : 0;
    const moreUnsolicited = !initialR2T && unsolicitedTotal > immediateLen;
    await this.sendPdu(this.commandHeader(cdb, { write: true, edtl: data.length, final: !moreUnsolicited }), data.subarray(0, immediateLen));
    if (moreUnsolicited) await this.sendBurst(itt, 0xffffffff, immediateLen, unsolicitedTotal, data, maxSeg);
    for (;;) {
      const pdu = await this.next(10_000);
      if (pdu === null) throw new Error('connection closed during write');
      if (pdu.itt !== itt) continue;
      if (pdu.opcode === Opcode.R2T) {
        const offset = pdu.bhs.readUInt32BE(40);
        const length = pdu.bhs.readUInt32BE(44);
        await this.sendBurst(itt, pdu.targetTransferTag, offset, offset + length, data, maxSeg);
      } else if (pdu.opcode === Opcode.ScsiResponse) {
        const sense = pdu.data.length >= 2 ? pdu.data.subarray(2, 2 + pdu.data.readUInt16BE(0)) : null;
        return { status: pdu.bhs[3]!, sense };
      } else if (pdu.opcode === Opcode.Reject) {
        throw new Error(`write rejected, reason 0x${pdu.bhs[2]!.toString(16)}`);
      }
    }
  }

  private async sendBurst(itt: number, ttt: number, from: number, to: number, data: Buffer, maxSeg: number): Promise<void> {
    let dataSN = 0;
    for (let off = from; off < to; off += maxSeg) {
      const end = Math.min(off + maxSeg, to);
      await this.sendPdu(this.dataOutHeader(itt, ttt, dataSN++, off, end === to), data.subarray(off, end));
    }
  }

  async nopOut(ping: Buffer = Buffer.alloc(0)): Promise<Pdu> {
    const h = Buffer.alloc(48);
    h[0] = 0x40 | Opcode.NopOut;
    h[1] = 0x80;
    const itt = this.itt++;
    h.writeUInt32BE(itt, 16);
    h.writeUInt32BE(0xffffffff, 20);
    h.writeUInt32BE(this.cmdSN, 24);
    h.writeUInt32BE(this.expStatSN, 28);
    await this.sendPdu(h, ping);
    for (;;) {
      const pdu = await this.next();
      if (pdu === null) throw new Error('closed');
      if (pdu.opcode === Opcode.NopIn && pdu.itt === itt) return pdu;
    }
  }

  async text(pairs: Array<[string, string]>): Promise<Array<[string, string]>> {
    const itt = this.itt++;
    const out: Buffer[] = [];
    let ttt = 0xffffffff;
    for (;;) {
      const h = Buffer.alloc(48);
      h[0] = 0x40 | Opcode.TextRequest;
      h[1] = 0x80;
      h.writeUInt32BE(itt, 16);
      h.writeUInt32BE(ttt, 20);
      h.writeUInt32BE(this.cmdSN, 24);
      h.writeUInt32BE(this.expStatSN, 28);
      await this.sendPdu(h, ttt === 0xffffffff ? encodeText(pairs) : Buffer.alloc(0));
      const res = await this.next();
      if (res === null || res.opcode !== Opcode.TextResponse) throw new Error('no Text Response');
      out.push(Buffer.from(res.data));
      if ((res.flags & 0x40) === 0) break;
      ttt = res.targetTransferTag;
    }
    return decodeText(Buffer.concat(out));
  }

  /** Logout Request BHS, reason 0: close the session (RFC 7143 §11.14). Immediate. */
  logoutHeader(): Buffer {
    const h = Buffer.alloc(48);
    h[0] = 0x40 | Opcode.LogoutRequest;
    h[1] = 0x80;
    h.writeUInt32BE(this.itt++, 16);
    h.writeUInt32BE(this.cmdSN, 24);
    h.writeUInt32BE(this.expStatSN, 28);
    return h;
  }

  async logout(): Promise<Pdu | null> {
    await this.sendPdu(this.logoutHeader());
    return this.next();
  }

  close(): void {
    this.socket.destroy();
  }
}

function assemble(chunks: Array<{ offset: number; data: Buffer }>): Buffer {
  const total = chunks.reduce((m, c) => Math.max(m, c.offset + c.data.length), 0);
  const out = Buffer.alloc(total);
  for (const c of chunks) c.data.copy(out, c.offset);
  return out;
}
