import { describe, expect, it } from 'vitest';
import { PduFramer, type FramingError } from '../../src/pdu/framer.js';
import { BufferPool } from '../../src/pdu/buffer-pool.js';
import { computeDigest } from '../../src/pdu/digest.js';
import type { Pdu } from '../../src/pdu/pdu.js';
import { decodeText, encodeText, TextFormatError } from '../../src/pdu/text.js';

function pduBytes(opcode: number, data: Buffer, opts: { ahs?: Buffer; headerDigest?: boolean; dataDigest?: boolean; itt?: number } = {}): Buffer {
  const bhs = Buffer.alloc(48);
  bhs[0] = opcode;
  bhs[4] = (opts.ahs?.length ?? 0) / 4;
  bhs[5] = (data.length >> 16) & 0xff;
  bhs[6] = (data.length >> 8) & 0xff;
  bhs[7] = data.length & 0xff;
  bhs.writeUInt32BE(opts.itt ?? 7, 16);
  const header = Buffer.concat([bhs, opts.ahs ?? Buffer.alloc(0)]);
  const parts = [header];
  if (opts.headerDigest) {
    const d = Buffer.alloc(4);
    d.writeUInt32LE(computeDigest(header), 0);
    parts.push(d);
  }
  if (data.length > 0) {
    const padded = Buffer.concat([data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
    parts.push(padded);
    if (opts.dataDigest) {
      const d = Buffer.alloc(4);
      d.writeUInt32LE(computeDigest(padded), 0);
      parts.push(d);
    }
  }
  return Buffer.concat(parts);
}

function collect(configure?: (f: PduFramer) => void): { framer: PduFramer; pdus: Pdu[]; errors: FramingError[] } {
  const pdus: Pdu[] = [];
  const errors: FramingError[] = [];
  const framer = new PduFramer((p) => pdus.push(p), (e) => errors.push(e), new BufferPool());
  framer.maxDataSegmentLength = 1 << 20;
  configure?.(framer);
  return { framer, pdus, errors };
}

/** Push `bytes` in `step`-byte chunks through one reused buffer, scribbled over after each push (as the socket's user buffer is). */
function feed(framer: PduFramer, bytes: Buffer, step: number): void {
  const scratch = Buffer.alloc(step);
  for (let i = 0; i < bytes.length; i += step) {
    const n = bytes.copy(scratch, 0, i, i + step);
    framer.push(scratch.subarray(0, n));
    scratch.fill(0xee);
  }
}

describe('PduFramer', () => {
  const payloads = [Buffer.alloc(0), Buffer.from('abc'), Buffer.alloc(5000, 0x5a), Buffer.alloc(70_001, 0x11)];
  const stream = Buffer.concat(payloads.map((p, i) => pduBytes(0x01, p, { itt: i })));

  it('delivers PDUs coalesced in one chunk', () => {
    const { framer, pdus } = collect();
    feed(framer, stream, stream.length);
    expect(pdus.map((p) => p.itt)).toEqual([0, 1, 2, 3]);
    expect(pdus.map((p) => p.data.length)).toEqual(payloads.map((p) => p.length));
    pdus.forEach((p, i) => expect(p.data.equals(payloads[i]!)).toBe(true));
  });

  it.each([1, 3, 47, 48, 49, 1000, 65536])('delivers identical PDUs when split every %i bytes', (step) => {
    const { framer, pdus } = collect();
    feed(framer, stream, step);
    expect(pdus.map((p) => p.itt)).toEqual([0, 1, 2, 3]);
    pdus.forEach((p, i) => expect(p.data.equals(payloads[i]!)).toBe(true));
  });

  it('returns AHS and honours header and data digests', () => {
    const ahs = Buffer.alloc(8, 0x33);
    const bytes = pduBytes(0x01, Buffer.from('hello'), { ahs, headerDigest: true, dataDigest: true });
    const { framer, pdus, errors } = collect((f) => { f.headerDigest = true; f.dataDigest = true; });
    for (let i = 0; i < bytes.length; i += 5) framer.push(bytes.subarray(i, i + 5));
    expect(errors).toEqual([]);
    expect(pdus).toHaveLength(1);
    expect(pdus[0]!.ahs!.equals(ahs)).toBe(true);
    expect(pdus[0]!.data.toString()).toBe('hello');
  });

  it.each([1, 3, 4, 1000, 65536])('checks the data digest of a segment split every %i bytes', (step) => {
    const payload = Buffer.alloc(70_001);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 13) & 0xff;
    const good = pduBytes(0x05, payload, { dataDigest: true, itt: 1 });
    const bad = Buffer.from(good);
    bad[bad.length - 2] ^= 0x40; // inside the digest, which itself may be split
    const { framer, pdus, errors } = collect((f) => { f.dataDigest = true; });
    feed(framer, Buffer.concat([good, bad, good]), step);
    expect(errors.map((e) => e.kind)).toEqual(['data-digest']);
    expect(pdus).toHaveLength(2);
    for (const p of pdus) expect(p.data.equals(payload)).toBe(true);
  });

  it('reports a header digest error and stops', () => {
    const bytes = pduBytes(0x01, Buffer.from('x'), { headerDigest: true });
    bytes[20] ^= 0xff;
    const { framer, pdus, errors } = collect((f) => { f.headerDigest = true; });
    framer.push(Buffer.concat([bytes, pduBytes(0x01, Buffer.alloc(0), { headerDigest: true })]));
    expect(pdus).toHaveLength(0);
    expect(errors.map((e) => e.kind)).toEqual(['header-digest']);
  });

  it('drops a PDU with a bad data digest and continues with the next', () => {
    const bad = pduBytes(0x05, Buffer.from('payload!'), { dataDigest: true, itt: 1 });
    bad[bad.length - 1] ^= 0x01;
    const good = pduBytes(0x05, Buffer.from('ok'), { dataDigest: true, itt: 2 });
    const { framer, pdus, errors } = collect((f) => { f.dataDigest = true; });
    framer.push(Buffer.concat([bad, good]));
    expect(errors.map((e) => [e.kind, e.bhs.readUInt32BE(16)])).toEqual([['data-digest', 1]]);
    expect(pdus.map((p) => p.itt)).toEqual([2]);
  });

  it('skips an oversized data segment without buffering it and resynchronises', () => {
    const { framer, pdus, errors } = collect((f) => { f.maxDataSegmentLength = 512; });
    framer.push(Buffer.concat([pduBytes(0x05, Buffer.alloc(4096), { itt: 1 }), pduBytes(0x00, Buffer.alloc(0), { itt: 2 })]));
    expect(errors.map((e) => e.kind)).toEqual(['oversize']);
    expect(pdus.map((p) => p.itt)).toEqual([2]);
  });

  it('matches the RFC 3720 B.4 CRC32C vector (32 bytes of zeros)', () => {
    expect(computeDigest(Buffer.alloc(32))).toBe(0x8a9136aa);
  });
});

describe('text codec', () => {
  it('round-trips key=value pairs', () => {
    const pairs: Array<[string, string]> = [['InitiatorName', 'iqn.x:y'], ['MaxBurstLength', '262144']];
    expect(decodeText(encodeText(pairs))).toEqual(pairs);
  });

  it('rejects a pair without a terminating NUL, a missing =, and an over-long key or value', () => {
    expect(() => decodeText(Buffer.from('A=B'))).toThrow(TextFormatError);
    expect(() => decodeText(Buffer.from('AB\0'))).toThrow(TextFormatError);
    expect(() => decodeText(Buffer.from(`${'K'.repeat(64)}=1\0`))).toThrow(TextFormatError);
    expect(() => decodeText(Buffer.from(`InitiatorAlias=${'v'.repeat(256)}\0`))).toThrow(TextFormatError);
  });
});
