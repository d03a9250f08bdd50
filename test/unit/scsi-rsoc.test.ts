import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/scsi/commands.js';
import { KEY, cdb, clearUa, expectGood, expectSense, fieldPointer, makeDevice, run, u16, u32 } from './scsi-helpers.js';

const rsoc = (options: number, op = 0, sa = 0, alloc = 65535, rctd = false) =>
  cdb([0xa3, 0x0c, (rctd ? 0x80 : 0) | options, op, ...u16(sa), ...u32(alloc), 0, 0]);

interface Desc {
  opcode: number;
  sa: number;
  servactv: boolean;
  ctdp: boolean;
  cdbLength: number;
}

function parseAll(d: Buffer): Desc[] {
  const len = d.readUInt32BE(0);
  const out: Desc[] = [];
  let o = 4;
  while (o < 4 + len) {
    const ctdp = (d[o + 5]! & 0x02) !== 0;
    out.push({ opcode: d[o]!, sa: d.readUInt16BE(o + 2), servactv: (d[o + 5]! & 1) !== 0, ctdp, cdbLength: d.readUInt16BE(o + 6) });
    o += ctdp ? 20 : 8;
  }
  return out;
}

async function ready() {
  const d = makeDevice();
  await clearUa(d.dev);
  return d;
}

describe('REPORT SUPPORTED OPERATION CODES', () => {
  it('lists exactly the dispatch table', async () => {
    const { dev, lu } = await ready();
    const r = await run(dev, rsoc(0));
    expectGood(r);
    const list = parseAll(r.data!);
    const table = COMMANDS.all().filter((d) => d.available?.(lu) ?? true); // e.g. no target port groups here
    expect(list.map((d) => [d.opcode, d.servactv ? d.sa : undefined, d.cdbLength])).toEqual(
      table.map((d) => [d.opcode, d.serviceAction, d.usage.length]),
    );
    const ops = list.map((d) => d.opcode);
    for (const op of [0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x25, 0x28, 0x2a, 0x2f, 0x35, 0x55, 0x5a, 0x88, 0x8a, 0x8f, 0x91, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa, 0xaf]) {
      expect(ops).toContain(op);
    }
  });

  it('every listed command is executable (not INVALID COMMAND OPERATION CODE) and every other opcode is', async () => {
    const { dev } = await ready();
    const listed = new Set(parseAll((await run(dev, rsoc(0))).data!).map((d) => d.opcode));
    for (let op = 0; op < 256; op++) {
      const r = await run(dev, cdb([op], 16));
      const invalidOpcode = r.status === 2 && r.sense![12] === 0x20;
      expect(invalidOpcode, `opcode ${op.toString(16)}`).toBe(!listed.has(op));
    }
  });

  it('one command (options 1/2) matches the table, per libiscsi rules', async () => {
    const { dev } = await ready();
    const list = parseAll((await run(dev, rsoc(0))).data!);
    for (const d of list) {
      const r1 = await run(dev, rsoc(1, d.opcode, d.sa));
      const r2 = await run(dev, rsoc(2, d.opcode, d.sa));
      const good = d.servactv ? r2 : r1;
      const bad = d.servactv ? r1 : r2;
      expectGood(good);
      expectSense(bad, KEY.ILLEGAL_REQUEST, 0x24, 0x00);
      const data = good.data!;
      expect(data[1]! & 0x07).toBe(0x03);
      const n = data.readUInt16BE(2);
      expect(n).toBe(d.cdbLength);
      expect(data[4]).toBe(d.opcode);
      const desc = COMMANDS.get(d.opcode, d.servactv ? d.sa : undefined)!;
      expect([...data.subarray(4, 4 + n)]).toEqual(desc.usage);
      if (d.servactv) expect(data[5]! & 0x1f).toBe(d.sa);
    }
  });

  it('reports unsupported commands with SUPPORT 001b', async () => {
    const { dev } = await ready();
    // WRITE ATOMIC(16) and an unassigned SERVICE ACTION IN(16) action are not implemented.
    const r = await run(dev, rsoc(1, 0x9c));
    expectGood(r);
    expect([...r.data!]).toEqual([0, 0x01, 0, 0]);
    const r2 = await run(dev, rsoc(2, 0x9e, 0x13));
    expect(r2.data![1]! & 7).toBe(1);
    const r3 = await run(dev, rsoc(3, 0x28));
    expect(r3.data![1]! & 7).toBe(3);
  });

  it('RCTD adds command timeouts descriptors', async () => {
    const { dev } = await ready();
    const all = parseAll((await run(dev, rsoc(0, 0, 0, 65535, true))).data!);
    expect(all.every((d) => d.ctdp)).toBe(true);
    const one = (await run(dev, rsoc(1, 0x28, 0, 65535, true))).data!;
    expect(one[1]! & 0x80).toBe(0x80);
    expect(one.length).toBe(4 + 10 + 12);
    expect(one.readUInt16BE(14)).toBe(0x0a);
  });

  it('truncates to the allocation length; bad reporting options are INVALID FIELD IN CDB', async () => {
    const { dev } = await ready();
    const r = await run(dev, rsoc(0, 0, 0, 10));
    expect(r.data!.length).toBe(10);
    const s = expectSense(await run(dev, rsoc(5)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 2, bit: 2 });
  });
});

describe('dispatch', () => {
  it('REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', async () => {
    const { dev } = await ready();
    const r = await run(dev, cdb([0xa3, 0x0d, 0, 0, 0, 0, ...u32(4), 0, 0]));
    expectGood(r);
    expect(r.data![0]).toBe(0xda);
    const r2 = await run(dev, cdb([0xa3, 0x0d, 0x80, 0, 0, 0, ...u32(16), 0, 0]));
    expect(r2.data!.length).toBe(16);
    expect(r2.data![3]).toBe(0x0c);
  });

  it('unknown opcode → INVALID COMMAND OPERATION CODE; unknown MAINTENANCE IN action → INVALID FIELD IN CDB', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, cdb([0x9c])), KEY.ILLEGAL_REQUEST, 0x20, 0x00); // WRITE ATOMIC(16)
    expectSense(await run(dev, cdb([0xa3, 0x0a])), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });

  it('NACA = 1 → INVALID FIELD IN CDB pointing at the control byte', async () => {
    const { dev } = await ready();
    const s = expectSense(await run(dev, cdb([0x00, 0, 0, 0, 0, 0x04])), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 5, bit: 2 });
    const s10 = expectSense(await run(dev, cdb([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04])), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s10)).toEqual({ cd: true, byte: 9, bit: 2 });
  });
});
