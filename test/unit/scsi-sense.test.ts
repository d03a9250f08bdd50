import { describe, expect, it } from 'vitest';
import { MAX_LUN, UNSUPPORTED_LUN, decodeLun, encodeLun } from '../../src/scsi/lun-address.js';
import {
  Asc,
  SenseKey,
  checkCondition,
  fixedSense,
  fixedToDescriptorSense,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  readError,
  writeError,
} from '../../src/scsi/sense.js';

describe('fixed sense', () => {
  it('has response code 70h, additional length 10 and the key/ASC/ASCQ', () => {
    const s = fixedSense(SenseKey.ILLEGAL_REQUEST, 0x24, 0x00);
    expect(s.length).toBe(18);
    expect(s[0]).toBe(0x70);
    expect(s[2]).toBe(5);
    expect(s[7]).toBe(10);
    expect([s[12], s[13]]).toEqual([0x24, 0x00]);
    expect(s[15]).toBe(0);
  });

  it('sets VALID and INFORMATION, and the SKSV field pointer', () => {
    const s = fixedSense(SenseKey.MISCOMPARE, 0x1d, 0, { info: 0x01020304, field: { cd: true, byte: 300, bit: 5 } });
    expect(s[0]).toBe(0xf0);
    expect(s.readUInt32BE(3)).toBe(0x01020304);
    expect(s[15]).toBe(0x80 | 0x40 | 0x08 | 5);
    expect(s.readUInt16BE(16)).toBe(300);
    const p = invalidFieldInParameterList(12).sense!;
    expect(p[15]).toBe(0x80);
    expect(p.readUInt16BE(16)).toBe(12);
    const c = invalidFieldInCdb(1, 4).sense!;
    expect(c[15]).toBe(0xcc);
  });

  it('converts to descriptor format', () => {
    const d = fixedToDescriptorSense(fixedSense(6, 0x29, 0x00));
    expect([...d]).toEqual([0x72, 6, 0x29, 0x00, 0, 0, 0, 0]);
    const d2 = fixedToDescriptorSense(fixedSense(0x0e, 0x1d, 0, { info: 77, field: { cd: true, byte: 2 } }));
    expect(d2[0]).toBe(0x72);
    expect(d2[7]).toBe(20);
    expect(d2[8]).toBe(0x00); // information descriptor
    expect(d2.readUInt32BE(8 + 8)).toBe(77);
    expect(d2[20]).toBe(0x02); // sense key specific descriptor
    expect(d2[24]).toBe(0xc0);
  });

  it('checkCondition / writeError', () => {
    const r = checkCondition(SenseKey.UNIT_ATTENTION, 0x2a, 0x01);
    expect(r.status).toBe(2);
    expect(writeError(Object.assign(new Error(), { code: 'ENOSPC' })).sense![12]).toBe(0x27);
    expect(writeError(Object.assign(new Error(), { code: 'EIO' })).sense![12]).toBe(0x0c);
    expect(writeError(undefined).sense![2]).toBe(3);
    expect(Asc.SPACE_ALLOCATION_FAILED_WRITE_PROTECT).toBe(0x2707);
  });

  it('a backend that does not serve the medium here (ENOTOWNER) answers NOT READY, in transition: a path error, never MEDIUM ERROR', () => {
    const notOwner = Object.assign(new Error(), { code: 'ENOTOWNER' });
    for (const r of [writeError(notOwner), readError(notOwner)]) {
      expect([r.sense![2]! & 0x0f, r.sense![12], r.sense![13]]).toEqual([SenseKey.NOT_READY, 0x04, 0x0a]);
    }
  });
});

describe('LUN addressing (SAM-5 §4.7)', () => {
  it('encodes peripheral below 256 and flat space above', () => {
    const b = Buffer.alloc(8);
    encodeLun(5, b, 0);
    expect(b.toString('hex')).toBe('0005000000000000');
    encodeLun(256, b, 0);
    expect(b.toString('hex')).toBe('4100000000000000');
    encodeLun(MAX_LUN, b, 0);
    expect(b.toString('hex')).toBe('7fff000000000000');
    expect(() => encodeLun(MAX_LUN + 1, b, 0)).toThrow();
  });

  it('decodes what it encodes, and flat encodings of small LUNs', () => {
    const b = Buffer.alloc(16);
    for (const lun of [0, 1, 255, 256, 1000, MAX_LUN]) {
      encodeLun(lun, b, 8);
      expect(decodeLun(b, 8)).toBe(lun);
    }
    expect(decodeLun(Buffer.from('4005000000000000', 'hex'), 0)).toBe(5);
  });

  it('rejects multi-level, bus-addressed, LU-addressed and extended LUNs', () => {
    for (const hex of ['0001000100000000', '0101000000000000', '8001000000000000', 'c101000000000000', '0000000000000001']) {
      expect(decodeLun(Buffer.from(hex, 'hex'), 0)).toBe(UNSUPPORTED_LUN);
    }
  });
});
