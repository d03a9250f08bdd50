/**
 * A deliberately tiny iSCSI initiator for e2e assertions that libiscsi's command-line tools cannot
 * express precisely (e.g. iscsi-inq prints binary NAA designators with %s, truncating at the first
 * zero byte). One connection, no digests, no auth, login straight into the operational stage,
 * one command at a time. Not used by the server; independent of src/.
 */
import { Socket } from 'node:net';

const BHS = 48;

export interface ScsiResult {
  status: number;
  data: Buffer;
  sense: Buffer;
}

export interface Designator {
  protocolId: number;
  codeSet: number;
  piv: boolean;
  association: number;
  type: number;
  value: Buffer;
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function keys(kv: Record<string, string>): Buffer {
  return Buffer.from(Object.entries(kv).map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}

function parseKeys(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of b.toString('utf8').split('\0')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

interface Pdu {
  bhs: Buffer;
  data: Buffer;
}

export class MiniInitiator {
  private sock = new Socket();
  private buf = Buffer.alloc(0);
  private waiters: Array<(p: Pdu) => void> = [];
  private queue: Pdu[] = [];
  private closedErr: Error | undefined;
  private itt = 1;
  private cmdSn = 1;
  private expStatSn = 0;
  private timeoutMs: number;
  /** Keys the target answered during login. */
  negotiated: Record<string, string> = {};

  constructor(opts: { timeoutMs?: number } = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  static async login(opts: {
    host?: string;
    port: number;
    targetName: string;
    initiatorName: string;
    timeoutMs?: number;
  }): Promise<MiniInitiator> {
    const c = new MiniInitiator(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {});
    await c.connect(opts.host ?? '127.0.0.1', opts.port);
    await c.doLogin(opts.initiatorName, opts.targetName);
    return c;
  }

  private connect(host: string, port: number): Promise<void> {
    return new Promise((res, rej) => {
      this.sock.once('error', rej);
      this.sock.connect(port, host, () => {
        this.sock.off('error', rej);
        this.sock.on('error', (e) => this.fail(e));
        this.sock.on('close', () => this.fail(new Error('connection closed by target')));
        this.sock.on('data', (d: Buffer) => this.onData(d));
        res();
      });
    });
  }

  private fail(e: Error): void {
    this.closedErr ??= e;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f({ bhs: Buffer.alloc(0), data: Buffer.alloc(0) });
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < BHS) return;
      const ahs = this.buf[4]! * 4;
      const dsl = this.buf.readUIntBE(5, 3);
      const total = BHS + ahs + pad4(dsl);
      if (this.buf.length < total) return;
      const pdu = { bhs: Buffer.from(this.buf.subarray(0, BHS)), data: Buffer.from(this.buf.subarray(BHS + ahs, BHS + ahs + dsl)) };
      this.buf = this.buf.subarray(total);
      const w = this.waiters.shift();
      if (w) w(pdu);
      else this.queue.push(pdu);
    }
  }

  private next(): Promise<Pdu> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.closedErr) return Promise.reject(this.closedErr);
    return new Promise((res, rej) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        rej(new Error(`timed out waiting for a PDU after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const waiter = (p: Pdu) => {
        clearTimeout(t);
        if (p.bhs.length === 0) rej(this.closedErr ?? new Error('closed'));
        else res(p);
      };
      this.waiters.push(waiter);
    });
  }

  private send(bhs: Buffer, data: Buffer = Buffer.alloc(0)): void {
    bhs.writeUIntBE(data.length, 5, 3);
    const padded = Buffer.alloc(pad4(data.length));
    data.copy(padded);
    this.sock.write(Buffer.concat([bhs, padded]));
  }

  private async doLogin(initiatorName: string, targetName: string): Promise<void> {
    const isid = Buffer.from([0x80, 0x00, 0x00, 0x01, 0x00, Math.floor(Math.random() * 256)]);
    let payload = keys({
      InitiatorName: initiatorName,
      TargetName: targetName,
      SessionType: 'Normal',
      HeaderDigest: 'None',
      DataDigest: 'None',
      MaxRecvDataSegmentLength: '262144',
      InitialR2T: 'Yes',
      ImmediateData: 'No',
      ErrorRecoveryLevel: '0',
    });
    const itt = this.itt++;
    for (let round = 0; round < 8; round++) {
      const bhs = Buffer.alloc(BHS);
      bhs[0] = 0x40 | 0x03; // immediate, Login Request
      bhs[1] = 0x80 | (1 << 2) | 3; // Transit, CSG=operational, NSG=full feature
      isid.copy(bhs, 8);
      bhs.writeUInt32BE(itt, 16);
      bhs.writeUInt32BE(this.cmdSn, 24);
      bhs.writeUInt32BE(this.expStatSn, 28);
      this.send(bhs, payload);
      const rsp = await this.next();
      const op = rsp.bhs[0]! & 0x3f;
      if (op !== 0x23) throw new Error(`expected Login Response, got opcode 0x${op.toString(16)}`);
      const cls = rsp.bhs[36]!;
      const detail = rsp.bhs[37]!;
      if (cls !== 0) throw new Error(`login rejected: status class ${cls} detail ${detail}`);
      Object.assign(this.negotiated, parseKeys(rsp.data));
      this.expStatSn = rsp.bhs.readUInt32BE(24) + 1;
      const transit = (rsp.bhs[1]! & 0x80) !== 0;
      const nsg = rsp.bhs[1]! & 0x03;
      if (transit && nsg === 3) return;
      payload = Buffer.alloc(0);
    }
    throw new Error('login did not reach full feature phase');
  }

  /** Sends one SCSI command with no data-out and collects its Data-In and status. */
  async command(lun: number, cdb: Buffer, expectedLength: number): Promise<ScsiResult> {
    if (cdb.length > 16) throw new Error('CDB > 16 bytes not supported');
    const itt = this.itt++;
    const bhs = Buffer.alloc(BHS);
    bhs[0] = 0x01;
    bhs[1] = 0x80 | (expectedLength > 0 ? 0x40 : 0) | 0x01; // Final, Read, SIMPLE
    if (lun < 256) bhs[9] = lun;
    else { bhs[8] = 0x40 | ((lun >> 8) & 0x3f); bhs[9] = lun & 0xff; }
    bhs.writeUInt32BE(itt, 16);
    bhs.writeUInt32BE(expectedLength, 20);
    bhs.writeUInt32BE(this.cmdSn++, 24);
    bhs.writeUInt32BE(this.expStatSn, 28);
    cdb.copy(bhs, 32);
    this.send(bhs);
    const data = Buffer.alloc(expectedLength);
    let got = 0;
    for (;;) {
      const p = await this.next();
      const op = p.bhs[0]! & 0x3f;
      if (op === 0x20) {
        // NOP-In: answer target pings (TTT != 0xffffffff) so the session stays up.
        const ttt = p.bhs.readUInt32BE(20);
        if (ttt !== 0xffffffff) {
          const nop = Buffer.alloc(BHS);
          nop[0] = 0x40 | 0x00;
          nop[1] = 0x80;
          p.bhs.copy(nop, 8, 8, 16);
          nop.writeUInt32BE(0xffffffff, 16);
          nop.writeUInt32BE(ttt, 20);
          nop.writeUInt32BE(this.cmdSn, 24);
          nop.writeUInt32BE(this.expStatSn, 28);
          this.send(nop);
        }
        continue;
      }
      if (op === 0x3f) throw new Error(`target sent Reject (reason 0x${p.bhs[2]!.toString(16)})`);
      if (p.bhs.readUInt32BE(16) !== itt) continue; // not ours (e.g. async message)
      if (op === 0x25) {
        const off = p.bhs.readUInt32BE(40);
        p.data.copy(data, off);
        got = Math.max(got, off + p.data.length);
        if (p.bhs[1]! & 0x01) {
          this.expStatSn = p.bhs.readUInt32BE(24) + 1;
          return { status: p.bhs[3]!, data: data.subarray(0, got), sense: Buffer.alloc(0) };
        }
        continue;
      }
      if (op === 0x21) {
        this.expStatSn = p.bhs.readUInt32BE(24) + 1;
        const senseLen = p.data.length >= 2 ? p.data.readUInt16BE(0) : 0;
        return { status: p.bhs[3]!, data: data.subarray(0, got), sense: Buffer.from(p.data.subarray(2, 2 + senseLen)) };
      }
      throw new Error(`unexpected opcode 0x${op.toString(16)} while waiting for command ${itt}`);
    }
  }

  /** INQUIRY (EVPD when page is given), retrying once past a UNIT ATTENTION. */
  async inquiry(lun: number, page?: number, allocLen = 4096): Promise<Buffer> {
    const cdb = Buffer.alloc(6);
    cdb[0] = 0x12;
    if (page !== undefined) { cdb[1] = 0x01; cdb[2] = page; }
    cdb.writeUInt16BE(allocLen, 3);
    for (let i = 0; i < 3; i++) {
      const r = await this.command(lun, cdb, allocLen);
      if (r.status === 0) return r.data;
      if (r.status === 0x02 && (r.sense[2]! & 0x0f) === 0x06) continue; // UNIT ATTENTION
      throw new Error(`INQUIRY failed: status 0x${r.status.toString(16)} sense ${r.sense.toString('hex')}`);
    }
    throw new Error('INQUIRY kept failing with UNIT ATTENTION');
  }

  /** Parses VPD page 0x83 into its designation descriptors. */
  async deviceIdentification(lun: number): Promise<Designator[]> {
    const page = await this.inquiry(lun, 0x83);
    if (page[1] !== 0x83) throw new Error(`VPD page code ${page[1]} != 0x83`);
    return parseDesignators(page);
  }

  async logout(): Promise<void> {
    if (this.closedErr) return;
    const bhs = Buffer.alloc(BHS);
    bhs[0] = 0x40 | 0x06;
    bhs[1] = 0x80; // close the session
    bhs.writeUInt32BE(this.itt++, 16);
    bhs.writeUInt32BE(this.cmdSn, 24);
    bhs.writeUInt32BE(this.expStatSn, 28);
    this.send(bhs);
    try {
      for (;;) {
        const p = await this.next();
        if ((p.bhs[0]! & 0x3f) === 0x26) break;
      }
    } finally {
      this.sock.destroy();
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

export function parseDesignators(page: Buffer): Designator[] {
  const len = Math.min(page.readUInt16BE(2) + 4, page.length);
  const out: Designator[] = [];
  let off = 4;
  while (off + 4 <= len) {
    const dlen = page[off + 3]!;
    out.push({
      protocolId: page[off]! >> 4,
      codeSet: page[off]! & 0x0f,
      piv: (page[off + 1]! & 0x80) !== 0,
      association: (page[off + 1]! >> 4) & 0x03,
      type: page[off + 1]! & 0x0f,
      value: Buffer.from(page.subarray(off + 4, off + 4 + dlen)),
    });
    off += 4 + dlen;
  }
  return out;
}
