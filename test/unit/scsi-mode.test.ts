import { describe, expect, it } from 'vitest';
import {
  KEY,
  cdb,
  clearUa,
  expectGood,
  expectSense,
  fieldPointer,
  makeDevice,
  nexus,
  run,
  u16,
} from './scsi-helpers.js';

const sense6 = (page: number, opts: { pc?: number; dbd?: boolean; sub?: number; alloc?: number } = {}) =>
  cdb([0x1a, opts.dbd ? 0x08 : 0, ((opts.pc ?? 0) << 6) | page, opts.sub ?? 0, opts.alloc ?? 255, 0]);
const sense10 = (page: number, opts: { pc?: number; dbd?: boolean; llbaa?: boolean; alloc?: number } = {}) =>
  cdb([0x5a, (opts.dbd ? 0x08 : 0) | (opts.llbaa ? 0x10 : 0), ((opts.pc ?? 0) << 6) | page, 0, 0, 0, 0, ...u16(opts.alloc ?? 1024), 0]);
const select6 = (len: number, pf = true, sp = false) => cdb([0x15, (pf ? 0x10 : 0) | (sp ? 1 : 0), 0, 0, len, 0]);
const select10 = (len: number) => cdb([0x55, 0x10, 0, 0, 0, 0, 0, ...u16(len), 0]);

/** Pages after the header and block descriptors of MODE SENSE(6) data. */
function pages6(d: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  let o = 4 + d[3]!;
  while (o < d.length) {
    const len = d[o + 1]!;
    m.set(d[o]! & 0x3f, d.subarray(o, o + 2 + len));
    o += 2 + len;
  }
  return m;
}

async function ready(extra: Parameters<typeof makeDevice>[0] = {}) {
  const d = makeDevice({ blocks: 1000, ...extra });
  await clearUa(d.dev);
  return d;
}

describe('MODE SENSE', () => {
  it('(6) all pages: header, short block descriptor, caching/control/IEC in order', async () => {
    const { dev } = await ready({ writeCache: true });
    const r = await run(dev, sense6(0x3f));
    expectGood(r);
    const d = r.data!;
    expect(d[0]).toBe(d.length - 1);
    expect(d[2]).toBe(0x10); // DPOFUA, not WP
    expect(d[3]).toBe(8);
    expect(d.readUInt32BE(4)).toBe(1000);
    expect(d.readUIntBE(9, 3)).toBe(512);
    const p = pages6(d);
    expect([...p.keys()]).toEqual([0x08, 0x0a, 0x1c]);
    expect(p.get(0x08)!.length).toBe(20);
    expect(p.get(0x08)![2]! & 0x04).toBe(0x04); // WCE
    const ctl = p.get(0x0a)!;
    expect(ctl.length).toBe(12);
    expect(ctl[2]! & 0x04).toBe(0); // D_SENSE
    expect(ctl[2]! >> 5).toBe(0); // TST
    expect((ctl[3]! >> 1) & 3).toBe(0); // QERR
    expect(ctl[5]! & 0x40).toBe(0x40); // TAS = 1: other nexuses' aborted tasks get TASK ABORTED
  });

  it('WCE reflects the LU setting; DBD suppresses the block descriptor', async () => {
    const { dev } = await ready({ writeCache: false });
    const d = (await run(dev, sense6(0x08, { dbd: true }))).data!;
    expect(d[3]).toBe(0);
    expect(d.length).toBe(4 + 20);
    expect(d[4]).toBe(0x08);
    expect(d[6]! & 0x04).toBe(0);
  });

  it('changeable values expose only WCE; default = configured value', async () => {
    const { dev } = await ready({ writeCache: false });
    const ch = pages6((await run(dev, sense6(0x3f, { pc: 1 }))).data!);
    expect(ch.get(0x08)![2]).toBe(0x04);
    expect(ch.get(0x08)!.subarray(3).every((b) => b === 0)).toBe(true);
    expect(ch.get(0x0a)!.subarray(2).every((b) => b === 0)).toBe(true);
    expect(ch.get(0x1c)!.subarray(2).every((b) => b === 0)).toBe(true);
    const def = pages6((await run(dev, sense6(0x08, { pc: 2 }))).data!);
    expect(def.get(0x08)![2]! & 0x04).toBe(0);
  });

  it('saved values are SAVING PARAMETERS NOT SUPPORTED', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, sense6(0x08, { pc: 3 })), KEY.ILLEGAL_REQUEST, 0x39, 0x00);
    expectSense(await run(dev, sense10(0x3f, { pc: 3 })), KEY.ILLEGAL_REQUEST, 0x39, 0x00);
  });

  it('unknown pages and subpages are INVALID FIELD IN CDB; subpage FFh is accepted', async () => {
    const { dev } = await ready();
    const s = expectSense(await run(dev, sense6(0x19)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 2, bit: 5 });
    expectSense(await run(dev, sense6(0x08, { sub: 1 })), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectGood(await run(dev, sense6(0x3f, { sub: 0xff })));
  });

  it('sets WP for a read-only LU or a read-only nexus', async () => {
    const ro = await ready({ readOnly: true });
    expect((await run(ro.dev, sense6(0x08))).data![2]! & 0x80).toBe(0x80);
    const { dev } = await ready();
    const nx = nexus('ro', true);
    await clearUa(dev, nx);
    expect((await run(dev, sense6(0x08), { nx })).data![2]! & 0x80).toBe(0x80);
    expect((await run(dev, sense10(0x08))).data![3]! & 0x80).toBe(0);
  });

  it('(10) short and long LBA block descriptors; capacity above 2^32 saturates the short one', async () => {
    const { dev } = await ready();
    const d = (await run(dev, sense10(0x0a))).data!;
    expect(d.readUInt16BE(0)).toBe(d.length - 2);
    expect(d[4]! & 1).toBe(0);
    expect(d.readUInt16BE(6)).toBe(8);
    expect(d.readUInt32BE(8)).toBe(1000);
    const l = (await run(dev, sense10(0x0a, { llbaa: true }))).data!;
    expect(l[4]! & 1).toBe(1); // LONGLBA
    expect(l.readUInt16BE(6)).toBe(16);
    expect(l.readBigUInt64BE(8)).toBe(1000n);
    expect(l.readUInt32BE(20)).toBe(512);
  });

  it('honours the allocation length but reports the full MODE DATA LENGTH', async () => {
    const { dev } = await ready();
    const full = (await run(dev, sense6(0x3f))).data!;
    const r = await run(dev, sense6(0x3f, { alloc: 4 }));
    expect(r.data!.length).toBe(4);
    expect(r.data![0]).toBe(full[0]);
    const r10 = await run(dev, sense10(0x3f, { alloc: 3 }));
    expect(r10.data!.length).toBe(3);
  });
});

describe('MODE SELECT', () => {
  async function currentCaching(dev: Parameters<typeof run>[0]): Promise<Buffer> {
    const d = (await run(dev, sense6(0x08, { dbd: true }))).data!;
    return Buffer.from(d.subarray(4));
  }

  it('changes WCE (round trip), changes durability, and raises MODE PARAMETERS CHANGED for other nexuses only', async () => {
    const { dev, lu, mem } = await ready({ writeCache: true });
    const other = nexus('other');
    await clearUa(dev, other);
    const page = await currentCaching(dev);
    page[2]! &= ~0x04;
    const list = Buffer.concat([Buffer.alloc(4), page]);
    expectGood(await run(dev, select6(list.length), { dataOut: list }));
    expect(lu.writeCache).toBe(false);
    expect(mem.stats.flushes).toBe(1); // cached writes flushed when the cache is turned off
    expect((await currentCaching(dev))[2]! & 0x04).toBe(0);
    // The issuer sees no UA; the other nexus does.
    expectGood(await run(dev, cdb([0x00])));
    expectSense(await run(dev, cdb([0x00]), { nx: other }), KEY.UNIT_ATTENTION, 0x2a, 0x01);
    expectGood(await run(dev, cdb([0x00]), { nx: other }));
    // Writes are now durable.
    expectGood(await run(dev, cdb([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), { dataOut: Buffer.alloc(512) }));
    expect(mem.stats.durableWrites).toBe(1);
    // Turn it back on through MODE SELECT(10) with a block descriptor.
    page[2]! |= 0x04;
    const h10 = Buffer.alloc(8);
    h10.writeUInt16BE(8, 6);
    const bd = Buffer.alloc(8);
    bd.writeUInt32BE(1000, 0);
    bd.writeUIntBE(512, 5, 3);
    const list10 = Buffer.concat([h10, bd, page]);
    expectGood(await run(dev, select10(list10.length), { dataOut: list10 }));
    expect(lu.writeCache).toBe(true);
    expectSense(await run(dev, cdb([0x00]), { nx: other }), KEY.UNIT_ATTENTION, 0x2a, 0x01);
  });

  it('setting WCE to its current value raises no UA', async () => {
    const { dev } = await ready({ writeCache: true });
    const other = nexus('other');
    await clearUa(dev, other);
    const list = Buffer.concat([Buffer.alloc(4), await currentCaching(dev)]);
    expectGood(await run(dev, select6(list.length), { dataOut: list }));
    expectGood(await run(dev, cdb([0x00]), { nx: other }));
  });

  it('rejects changes to non-changeable fields with INVALID FIELD IN PARAMETER LIST and a pointer', async () => {
    const { dev, lu } = await ready({ writeCache: true });
    const page = await currentCaching(dev);
    page[2]! &= ~0x04;
    page[2]! |= 0x01; // RCD is not changeable
    const list = Buffer.concat([Buffer.alloc(4), page]);
    const s = expectSense(await run(dev, select6(list.length), { dataOut: list }), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: false, byte: 6, bit: 0 });
    expect(lu.writeCache).toBe(true); // nothing applied

    const ctl = pages6((await run(dev, sense6(0x0a, { dbd: true }))).data!).get(0x0a)!;
    const c2 = Buffer.from(ctl);
    c2[2]! |= 0x04; // D_SENSE
    const l2 = Buffer.concat([Buffer.alloc(4), c2]);
    expectSense(await run(dev, select6(l2.length), { dataOut: l2 }), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    // The unchanged control page is fine.
    const l3 = Buffer.concat([Buffer.alloc(4), ctl]);
    expectGood(await run(dev, select6(l3.length), { dataOut: l3 }));
  });

  it('rejects unknown pages, wrong page lengths, bad block descriptors and truncated lists', async () => {
    const { dev } = await ready();
    const page = await currentCaching(dev);
    const unknown = Buffer.concat([Buffer.alloc(4), Buffer.from([0x19, 0x02, 0, 0])]);
    expectSense(await run(dev, select6(unknown.length), { dataOut: unknown }), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    const badLen = Buffer.concat([Buffer.alloc(4), Buffer.from([0x08, 0x0a]), Buffer.alloc(10)]);
    expectSense(await run(dev, select6(badLen.length), { dataOut: badLen }), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    const badBd = Buffer.concat([Buffer.from([0, 0, 0, 8]), Buffer.from([0, 0, 0x03, 0xe8, 0, 0, 0x10, 0]), page]);
    expectSense(await run(dev, select6(badBd.length), { dataOut: badBd }), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    const truncated = Buffer.concat([Buffer.alloc(4), page.subarray(0, 10)]);
    expectSense(await run(dev, select6(truncated.length), { dataOut: truncated }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
    expectSense(await run(dev, select6(3), { dataOut: Buffer.alloc(3) }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
    const spf = Buffer.concat([Buffer.alloc(4), Buffer.from([0x48, 0x01, 0x00, 0x10]), Buffer.alloc(16)]);
    expectSense(await run(dev, select6(spf.length), { dataOut: spf }), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
  });

  it('SP=1 and PF=0 are INVALID FIELD IN CDB; a zero-length list is GOOD', async () => {
    const { dev } = await ready();
    const list = Buffer.concat([Buffer.alloc(4), await currentCaching(dev)]);
    const s = expectSense(await run(dev, select6(list.length, true, true), { dataOut: list }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 1, bit: 0 });
    expectSense(await run(dev, select6(list.length, false), { dataOut: list }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectGood(await run(dev, select6(0)));
  });

  it('a parameter list shorter than announced is INVALID FIELD IN INFORMATION UNIT', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, select6(24), { dataOut: Buffer.alloc(10) }), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
  });

  it('mode parameters persist across LOGICAL UNIT RESET', async () => {
    const { dev, lu } = await ready({ writeCache: true });
    const page = await currentCaching(dev);
    page[2]! &= ~0x04;
    const list = Buffer.concat([Buffer.alloc(4), page]);
    expectGood(await run(dev, select6(list.length), { dataOut: list }));
    await dev.resetLogicalUnit(nexus(), 0);
    expect(lu.writeCache).toBe(false);
  });
});
