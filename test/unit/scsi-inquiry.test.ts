import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import {
  LogicalUnit,
  MAX_COMPARE_AND_WRITE_BLOCKS,
  MAX_TRANSFER_BYTES,
  MAX_WRITE_SAME_BYTES,
  MAX_UNMAP_DESCRIPTORS,
  MAX_UNMAP_LBA_COUNT,
} from '../../src/scsi/logical-unit.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { KEY, cdb, expectGood, expectSense, fieldPointer, makeDevice, makeLu, nexus, run, u32 } from './scsi-helpers.js';

const inquiry = (evpd: number, page: number, alloc: number) => cdb([0x12, evpd, page, alloc >> 8, alloc & 0xff, 0]);

/** Parse VPD 83h designators. */
function designators(p: Buffer): { codeSet: number; piv: number; assoc: number; type: number; proto: number; value: Buffer }[] {
  const out = [];
  let o = 4;
  const end = 4 + p.readUInt16BE(2);
  while (o < end) {
    const len = p[o + 3]!;
    out.push({
      proto: p[o]! >> 4,
      codeSet: p[o]! & 0x0f,
      piv: p[o + 1]! >> 7,
      assoc: (p[o + 1]! >> 4) & 3,
      type: p[o + 1]! & 0x0f,
      value: p.subarray(o + 4, o + 4 + len),
    });
    o += 4 + len;
  }
  return out;
}

describe('INQUIRY', () => {
  it('returns SPC-4 standard data', async () => {
    const { dev } = makeDevice({ vendor: 'ACME', product: 'Disk', revision: '1.2' });
    const r = await run(dev, inquiry(0, 0, 255));
    expectGood(r);
    const d = r.data!;
    expect(d[0]).toBe(0x00); // PQ 0, direct access block device
    expect(d[1]! & 0x80).toBe(0); // not removable
    expect(d[2]).toBe(0x06); // SPC-4
    expect(d[3]! & 0x0f).toBe(2); // response data format
    expect(d[3]! & 0x10).toBe(0x10); // HiSup
    expect(d[4]).toBe(d.length - 5); // additional length
    expect(d[7]! & 0x02).toBe(0x02); // CmdQue
    expect(d.toString('latin1', 8, 16)).toBe('ACME    ');
    expect(d.toString('latin1', 16, 32)).toBe('Disk            ');
    expect(d.toString('latin1', 32, 36)).toBe('1.2 ');
    const versions = [];
    for (let o = 58; o < 74; o += 2) versions.push(d.readUInt16BE(o));
    expect(versions).toContain(0x04c0); // SBC-3
    expect(versions).toContain(0x0460); // SPC-4
  });

  it('truncates to the allocation length (including 0) without changing ADDITIONAL LENGTH', async () => {
    const { dev } = makeDevice();
    const full = (await run(dev, inquiry(0, 0, 255))).data!;
    const r = await run(dev, inquiry(0, 0, 36));
    expectGood(r);
    expect(r.data!.length).toBe(36);
    expect(r.data![4]).toBe(full[4]);
    const z = await run(dev, inquiry(0, 0, 0));
    expectGood(z);
    expect(z.data!.length).toBe(0);
    const vpd = await run(dev, inquiry(1, 0x83, 6));
    expect(vpd.data!.length).toBe(6);
  });

  it('EVPD=0 with a page code, an unknown VPD page and CMDDT are INVALID FIELD IN CDB', async () => {
    const { dev } = makeDevice();
    const s = expectSense(await run(dev, inquiry(0, 0x80, 255)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 2 });
    expectSense(await run(dev, inquiry(1, 0x99, 255)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, inquiry(2, 0, 255)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });

  it('lists the supported VPD pages, each of which is served', async () => {
    const { dev } = makeDevice();
    const r = await run(dev, inquiry(1, 0x00, 255));
    expectGood(r);
    const pages = [...r.data!.subarray(4, 4 + r.data!.readUInt16BE(2))];
    expect(pages).toEqual([0x00, 0x80, 0x83, 0x8f, 0xb0, 0xb1, 0xb2]);
    for (const p of pages) {
      const pr = await run(dev, inquiry(1, p, 1024));
      expectGood(pr);
      expect(pr.data![1]).toBe(p);
      expect(pr.data!.length).toBe(4 + pr.data!.readUInt16BE(2));
    }
  });

  it('VPD 80h carries the serial number', async () => {
    const { dev } = makeDevice({ serial: 'abc123' });
    const d = (await run(dev, inquiry(1, 0x80, 255))).data!;
    expect(d.toString('latin1', 4, 4 + d.readUInt16BE(2))).toBe('abc123');
  });

  it('VPD 83h has NAA-6, T10 vendor ID and SCSI name string designators', async () => {
    const naa = '6001405abcdef0123456789abcdef012';
    const { dev } = makeDevice({ naa, vendor: 'GLFS', serial: 'S1', targetName: 'iqn.2024-01.test:t1', targetPortalGroupTag: 3 });
    const ds = designators((await run(dev, inquiry(1, 0x83, 1024))).data!);
    const n = ds.find((d) => d.type === 3)!;
    expect(n).toMatchObject({ codeSet: 1, assoc: 0 });
    expect(n.value.toString('hex')).toBe(naa);
    expect(n.value[0]! >> 4).toBe(6);
    const t10 = ds.find((d) => d.type === 1)!;
    expect(t10).toMatchObject({ codeSet: 2, assoc: 0 });
    expect(t10.value.toString('latin1')).toBe('GLFS    S1');
    const names = ds.filter((d) => d.type === 8);
    const dev83 = names.find((d) => d.assoc === 2)!;
    expect(dev83).toMatchObject({ codeSet: 3, piv: 1, proto: 5 });
    expect(dev83.value.length % 4).toBe(0);
    expect(dev83.value.toString('utf8').replace(/\0+$/, '')).toBe('iqn.2024-01.test:t1');
    const port = names.find((d) => d.assoc === 1)!;
    expect(port.value.toString('utf8').replace(/\0+$/, '')).toBe('iqn.2024-01.test:t1,t,0x0003');
    const rel = ds.find((d) => d.type === 4)!;
    expect(rel.value.readUInt16BE(2)).toBe(3);
  });

  it('VPD B0h reports transfer, COMPARE AND WRITE and UNMAP limits; B1h non-rotating; B2h thin provisioning', async () => {
    const { dev } = makeDevice({ blockSize: 4096 });
    const b0 = (await run(dev, inquiry(1, 0xb0, 255))).data!;
    expect(b0[3]).toBe(0x3c);
    expect(b0[4]! & 0x01).toBe(1); // WSNZ: a zero-length WRITE SAME is refused
    expect(b0[5]).toBe(MAX_COMPARE_AND_WRITE_BLOCKS);
    expect(b0.readUInt32BE(8)).toBe(MAX_TRANSFER_BYTES / 4096);
    expect(b0.readUInt32BE(20)).toBe(MAX_UNMAP_LBA_COUNT);
    expect(b0.readUInt32BE(24)).toBe(MAX_UNMAP_DESCRIPTORS);
    expect(b0.readUInt32BE(28)).toBe(1); // OPTIMAL UNMAP GRANULARITY: one 4 KiB allocation unit
    expect(b0.readUInt32BE(32)).toBe(0x80000000); // UGAVALID, alignment 0
    expect(b0.readUInt32BE(36)).toBe(0);
    expect(b0.readUInt32BE(40)).toBe(MAX_WRITE_SAME_BYTES / 4096); // MAXIMUM WRITE SAME LENGTH
    const b1 = (await run(dev, inquiry(1, 0xb1, 255))).data!;
    expect(b1.readUInt16BE(4)).toBe(1);
    const b2 = (await run(dev, inquiry(1, 0xb2, 255))).data!;
    expect(b2[5]! & 0xe0).toBe(0xe0); // LBPU, LBPWS, LBPWS10
    expect(b2[5]! & 0x1c).toBe(0x04); // LBPRZ
    expect(b2[5]! & 0x02).toBe(0); // ANC_SUP
    expect(b2[6]! & 0x07).toBe(0x02); // thin provisioned
  });

  it('a backend that cannot punch holes: fully provisioned, no UNMAP limits', async () => {
    const mem = new MemoryBackend(64 * 512);
    const plain = { description: 'plain', sizeBytes: mem.sizeBytes, read: mem.read.bind(mem), write: mem.write.bind(mem), flush: mem.flush.bind(mem), close: mem.close.bind(mem) };
    const { dev } = makeDevice({ backend: plain });
    const b0 = (await run(dev, inquiry(1, 0xb0, 255))).data!;
    expect(b0.readUInt32BE(20)).toBe(0);
    expect(b0.readUInt32BE(24)).toBe(0);
    const b2 = (await run(dev, inquiry(1, 0xb2, 255))).data!;
    expect(b2[5]).toBe(0);
    expect(b2[6]! & 0x07).toBe(0);
  });

  it('does not report or clear a pending unit attention', async () => {
    const { dev } = makeDevice();
    expectGood(await run(dev, inquiry(0, 0, 96)));
    expectSense(await run(dev, cdb([0x00])), KEY.UNIT_ATTENTION, 0x29, 0x00);
  });
});

describe('LUN without a logical unit', () => {
  it('INQUIRY answers peripheral qualifier 011b / type 1Fh; VPD is LOGICAL UNIT NOT SUPPORTED', async () => {
    const { dev } = makeDevice();
    const r = await run(dev, inquiry(0, 0, 96), { lun: 5 });
    expectGood(r);
    expect(r.data![0]).toBe(0x7f);
    expectSense(await run(dev, inquiry(1, 0x80, 96), { lun: 5 }), KEY.ILLEGAL_REQUEST, 0x25, 0x00);
  });

  it('other commands are LOGICAL UNIT NOT SUPPORTED; REQUEST SENSE returns it as data', async () => {
    const { dev } = makeDevice();
    for (const c of [cdb([0x00]), cdb([0x28]), cdb([0x25]), cdb([0xff])]) {
      expectSense(await run(dev, c, { lun: 7 }), KEY.ILLEGAL_REQUEST, 0x25, 0x00);
    }
    const rs = await run(dev, cdb([0x03, 0, 0, 0, 252, 0]), { lun: 7 });
    expectGood(rs);
    expect([rs.data![2]! & 0xf, rs.data![12], rs.data![13]]).toEqual([KEY.ILLEGAL_REQUEST, 0x25, 0x00]);
  });
});

describe('REPORT LUNS', () => {
  function device(luns: number[]) {
    const units = luns.map((lun) => makeLu({ lun }).lu);
    return new ScsiDevice(units);
  }
  const reportLuns = (select: number, alloc: number) => cdb([0xa0, 0, select, 0, 0, 0, ...u32(alloc), 0, 0]);

  it('lists every LU in order, from any LUN, without reporting a UA', async () => {
    const dev = device([3, 0, 300]);
    for (const lun of [0, 3, 42]) {
      const r = await run(dev, reportLuns(0, 4096), { lun });
      expectGood(r);
      const d = r.data!;
      expect(d.readUInt32BE(0)).toBe(24);
      expect(d.subarray(8).toString('hex')).toBe('0000000000000000' + '0003000000000000' + '412c000000000000');
    }
    expect(dev.lunNumbers()).toEqual([0, 3, 300]);
    // The UA is still there for the next command.
    expectSense(await run(dev, cdb([0x00])), KEY.UNIT_ATTENTION, 0x29, 0x00);
  });

  it('SELECT REPORT 1 (well-known only) is empty, 2 is everything, others are invalid', async () => {
    const dev = device([0, 1]);
    const r1 = await run(dev, reportLuns(1, 64));
    expect(r1.data!.readUInt32BE(0)).toBe(0);
    expect(r1.data!.length).toBe(8);
    const r2 = await run(dev, reportLuns(2, 64));
    expect(r2.data!.readUInt32BE(0)).toBe(16);
    const s = expectSense(await run(dev, reportLuns(3, 64)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 2 });
  });

  it('an allocation length below 16 is INVALID FIELD IN CDB; otherwise the list is truncated', async () => {
    const dev = device([0, 1, 2]);
    const s = expectSense(await run(dev, reportLuns(0, 15)), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: true, byte: 6 });
    const r = await run(dev, reportLuns(0, 16));
    expectGood(r);
    expect(r.data!.length).toBe(16);
    expect(r.data!.readUInt32BE(0)).toBe(24); // LUN LIST LENGTH is not truncated
  });
});

describe('ScsiDevice construction', () => {
  it('rejects duplicate LUNs and bad NAA values', () => {
    expect(() => new ScsiDevice([makeLu({ lun: 1 }).lu, makeLu({ lun: 1 }).lu])).toThrow(/duplicate/);
    expect(() => makeLu({ naa: '5001405abcdef0123456789abcdef012' })).toThrow(/NAA/);
    expect(
      () =>
        new LogicalUnit({
          lun: 0,
          backend: new MemoryBackend(100),
          blockSize: 512,
          readOnly: false,
          writeCache: true,
          serial: 's',
          naa: '6001405abcdef0123456789abcdef012',
          vendor: 'v',
          product: 'p',
          revision: 'r',
          targetName: 't',
        }),
    ).toThrow(/smaller than one block/);
  });

  it('hasLun / lunNumbers', () => {
    const dev = new ScsiDevice([makeLu({ lun: 2 }).lu]);
    expect(dev.hasLun(2)).toBe(true);
    expect(dev.hasLun(0)).toBe(false);
    expect(dev.lunNumbers()).toEqual([2]);
  });

  it('uses the nexus identity per LU', async () => {
    const { dev } = makeDevice();
    expectSense(await run(dev, cdb([0x00]), { nx: nexus('x') }), KEY.UNIT_ATTENTION, 0x29, 0x00);
    expectGood(await run(dev, cdb([0x00]), { nx: nexus('x') }));
    expectSense(await run(dev, cdb([0x00]), { nx: nexus('y') }), KEY.UNIT_ATTENTION, 0x29, 0x00);
  });
});
