import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Opcode } from '../../src/pdu/opcodes.js';
import { startInProcessServer, type RunningServer } from '../support/in-process-server.js';
import { TestInitiator } from '../support/test-initiator.js';

let srv: RunningServer;
beforeAll(async () => { srv = await startInProcessServer(); });
afterAll(async () => { await srv.stop(); });

async function session(keys: Record<string, string> = {}, split: number[] | null = null): Promise<TestInitiator> {
  const ini = await TestInitiator.connect(srv.port);
  ini.split = split;
  const res = await ini.login({ keys });
  expect(res.status).toBe(0);
  await ini.clearUnitAttentions();
  return ini;
}

const variants: Array<[string, Record<string, string>, number[] | null]> = [
  ['ImmediateData=Yes InitialR2T=No (open-iscsi defaults)', { ImmediateData: 'Yes', InitialR2T: 'No' }, null],
  ['ImmediateData=No InitialR2T=Yes', { ImmediateData: 'No', InitialR2T: 'Yes' }, null],
  ['ImmediateData=Yes InitialR2T=Yes', { ImmediateData: 'Yes', InitialR2T: 'Yes' }, null],
  ['ImmediateData=No InitialR2T=No', { ImmediateData: 'No', InitialR2T: 'No' }, null],
  ['MaxRecvDataSegmentLength=512 both ways, small bursts', { MaxRecvDataSegmentLength: '512', MaxBurstLength: '4096', FirstBurstLength: '1024' }, null],
  ['header and data digests (CRC32C)', { HeaderDigest: 'CRC32C', DataDigest: 'CRC32C' }, null],
  ['PDUs split across odd TCP writes', { MaxBurstLength: '65536' }, [1, 47, 3, 512, 7, 4096, 13]],
  ['digests with split writes and several outstanding R2Ts', { HeaderDigest: 'CRC32C', DataDigest: 'CRC32C', InitialR2T: 'Yes', MaxOutstandingR2T: '4', MaxBurstLength: '16384', FirstBurstLength: '8192' }, [5, 49, 1000]],
];

describe.each(variants)('data path: %s', (_name, keys, split) => {
  it('writes data that reads back identically, over iSCSI and in the backing file', async () => {
    const ini = await session(keys, split);
    const lba = 1000 + Math.floor(Math.random() * 10_000);
    const data = randomBytes(300 * 1024);
    const w = await ini.write10(lba, data);
    expect({ status: w.status, sense: w.sense?.toString('hex') }).toEqual({ status: 0, sense: undefined });
    const back = await ini.read10(lba, data.length / 512);
    expect(back.equals(data)).toBe(true);
    const onDisk = readFileSync(srv.lunPath).subarray(lba * 512, lba * 512 + data.length);
    expect(onDisk.equals(data)).toBe(true);
    ini.close();
  });
});

describe('Data-In', () => {
  it('splits at the initiator MaxRecvDataSegmentLength with DataSN in order and status in the last PDU', async () => {
    const ini = await session({ MaxRecvDataSegmentLength: '512' });
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x28;
    cdb.writeUInt32BE(0, 2);
    cdb.writeUInt16BE(16, 7);
    const itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { read: true, edtl: 8192 }));
    const r = await ini.collect(itt);
    const dataIns = r.pdus.filter((p) => p.opcode === Opcode.DataIn);
    expect(dataIns).toHaveLength(16);
    dataIns.forEach((p, i) => {
      expect(p.dataSN).toBe(i);
      expect(p.bufferOffset).toBe(i * 512);
      expect(p.data.length).toBe(512);
      expect((p.flags & 0x01) !== 0).toBe(i === 15); // S only on the last
    });
    expect(r.status).toBe(0);
    ini.close();
  });

  it('reports residual underflow and overflow (RFC 7143 §11.4.5)', async () => {
    const ini = await session();
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x28;
    cdb.writeUInt16BE(1, 7); // one block = 512 bytes
    let itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { read: true, edtl: 1024 }));
    let r = await ini.collect(itt);
    expect(r.status).toBe(0);
    expect(r.flags & 0x02).toBe(0x02); // U
    expect(r.residual).toBe(512);
    expect(r.data.length).toBe(512);
    itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { read: true, edtl: 256 }));
    r = await ini.collect(itt);
    expect(r.status).toBe(0);
    expect(r.flags & 0x04).toBe(0x04); // O
    expect(r.residual).toBe(256);
    expect(r.data.length).toBe(256);
    ini.close();
  });
});

describe('command window', () => {
  it('opens a window of at least 128 commands and keeps it while commands complete', async () => {
    const ini = await session();
    const nop = await ini.nopOut(Buffer.from('ping-data'));
    expect(nop.data.toString()).toBe('ping-data');
    expect(((nop.maxCmdSN - nop.expCmdSN) >>> 0) + 1).toBeGreaterThanOrEqual(128);
    // 64 pipelined reads, all answered.
    const itts: number[] = [];
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x28;
    cdb.writeUInt16BE(8, 7);
    for (let i = 0; i < 64; i++) {
      itts.push(ini.itt);
      await ini.sendPdu(ini.commandHeader(cdb, { read: true, edtl: 4096 }));
    }
    const seen = new Set<number>();
    let last = nop;
    while (seen.size < 64) {
      const p = await ini.next();
      if (p === null) throw new Error('closed');
      if (p.opcode === Opcode.DataIn && (p.flags & 0x01) !== 0) { seen.add(p.itt); last = p; }
    }
    expect([...seen].sort((a, b) => a - b)).toEqual(itts);
    expect(last.expCmdSN).toBe(ini.cmdSN);
    expect(((last.maxCmdSN - last.expCmdSN) >>> 0) + 1).toBeGreaterThanOrEqual(128);
    ini.close();
  });

  it('ignores a command whose CmdSN is beyond MaxCmdSN (RFC 7143 §4.2.2.1)', async () => {
    const ini = await session();
    const cdb = Buffer.alloc(6); // TEST UNIT READY
    const saved = ini.cmdSN;
    ini.cmdSN = (saved + 100_000) >>> 0;
    const ignoredItt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { edtl: 0 }));
    ini.cmdSN = saved;
    const itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { edtl: 0 }));
    const r = await ini.collect(itt);
    expect(r.pdus.some((p) => p.itt === ignoredItt)).toBe(false);
    ini.close();
  });
});

describe('large writes', () => {
  it('solicit data only a couple of bursts ahead of what reached the file, and land intact', async () => {
    const ini = await session({ InitialR2T: 'Yes', ImmediateData: 'No', MaxOutstandingR2T: '8', MaxBurstLength: '262144', FirstBurstLength: '65536' });
    const total = 32 * 1024 * 1024;
    const data = randomBytes(total);
    const lba = 4096;
    const cdb = Buffer.alloc(16); // WRITE(16): 65536 blocks do not fit WRITE(10)
    cdb[0] = 0x8a;
    cdb.writeUInt32BE(lba, 6);
    cdb.writeUInt32BE(total / 512, 10);
    const itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { write: true, edtl: total }));
    // Before any data is sent, the target asks for at most two bursts (MaxOutstandingR2T is 8).
    const first: Array<{ ttt: number; offset: number; length: number }> = [];
    for (;;) {
      const pdu = await ini.next(300).catch(() => null);
      if (pdu === null) break;
      expect(pdu.opcode).toBe(Opcode.R2T);
      first.push({ ttt: pdu.targetTransferTag, offset: pdu.bhs.readUInt32BE(40), length: pdu.bhs.readUInt32BE(44) });
    }
    expect(first.map((r) => [r.offset, r.length])).toEqual([[0, 262144], [262144, 262144]]);
    // Answer every R2T as it comes until the status arrives.
    const pending = [...first];
    let status = -1;
    while (status < 0) {
      const r = pending.shift();
      if (r !== undefined) {
        let dataSN = 0;
        for (let off = r.offset; off < r.offset + r.length; off += 262144) {
          const end = Math.min(off + 262144, r.offset + r.length);
          await ini.sendPdu(ini.dataOutHeader(itt, r.ttt, dataSN++, off, end === r.offset + r.length), data.subarray(off, end));
        }
        continue;
      }
      const pdu = await ini.next(10_000);
      if (pdu === null) throw new Error('closed');
      if (pdu.opcode === Opcode.R2T) pending.push({ ttt: pdu.targetTransferTag, offset: pdu.bhs.readUInt32BE(40), length: pdu.bhs.readUInt32BE(44) });
      else if (pdu.opcode === Opcode.ScsiResponse && pdu.itt === itt) status = pdu.bhs[3]!;
    }
    expect(status).toBe(0);
    const onDisk = readFileSync(srv.lunPath).subarray(lba * 512, lba * 512 + total);
    expect(onDisk.equals(data)).toBe(true);
    ini.close();
  });

  it('answers a large write to an out-of-range LBA at once, and the session goes on', async () => {
    const ini = await session({ InitialR2T: 'No', ImmediateData: 'Yes', FirstBurstLength: '65536' });
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x2a;
    cdb.writeUInt32BE(0x7fffffff, 2);
    cdb.writeUInt16BE(2048, 7);
    const itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { write: true, edtl: 1024 * 1024, final: false }), Buffer.alloc(65536));
    const r = await ini.collect(itt);
    expect(r.status).toBe(0x02);
    expect([r.sense![2]! & 0x0f, r.sense![12], r.sense![13]]).toEqual([0x05, 0x21, 0x00]);
    expect((await ini.read10(0, 1)).length).toBe(512);
    ini.close();
  });
});

describe('data budget', () => {
  it('gives back every byte held for command data once the commands have ended', async () => {
    await new Promise((r) => setTimeout(r, 200));
    expect(srv.server.dataBudget.inUse).toBe(0);
  });
});

describe('data budget exhausted', () => {
  it('holds initiators back (stops reading) and resumes, with every command answered and no bytes leaked', async () => {
    const small = await startInProcessServer({ iscsi: { maxDataInFlight: 1024 * 1024 } });
    try {
      const ini = await TestInitiator.connect(small.port);
      expect((await ini.login({ keys: { MaxRecvDataSegmentLength: '262144' } })).status).toBe(0);
      await ini.clearUnitAttentions();
      // 64 reads of 256 KiB in flight = 16 MiB requested against a 1 MiB budget.
      const itts: number[] = [];
      const cdb = Buffer.alloc(10);
      cdb[0] = 0x28;
      cdb.writeUInt16BE(512, 7);
      for (let i = 0; i < 64; i++) {
        itts.push(ini.itt);
        await ini.sendPdu(ini.commandHeader(cdb, { read: true, edtl: 262144 }));
      }
      const done = new Set<number>();
      while (done.size < 64) {
        const p = await ini.next(10_000);
        if (p === null) throw new Error('closed');
        if (p.opcode === Opcode.DataIn && (p.flags & 0x01) !== 0) {
          expect(p.bhs[3]).toBe(0);
          done.add(p.itt);
        }
      }
      expect([...done].sort((a, b) => a - b)).toEqual(itts);
      // Reads beyond the budget waited: at most one command's buffer past the limit.
      expect(small.server.dataBudget.peak).toBeLessThan(1024 * 1024 + 262144);
      ini.close();
      await new Promise((r) => setTimeout(r, 100));
      expect(small.server.dataBudget.inUse).toBe(0);
    } finally {
      await small.stop();
    }
  });
});
