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
