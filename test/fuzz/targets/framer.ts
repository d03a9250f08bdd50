/**
 * PduFramer (src/pdu/framer.ts) on arbitrary bytes, digests on or off, cut into arbitrary chunks.
 * Input: [flags: bit0 header digest, bit1 data digest][MaxRecvDataSegmentLength = 512 << (byte & 7)]
 * [split seed: 2 bytes][the stream].
 * Properties: push never throws; no buffer over MaxRecvDataSegmentLength is taken from the pool or
 * delivered; a header is BHS + at most 255 AHS words; the PDUs and errors do not depend on how
 * the stream is cut.
 */
import { BufferPool } from '../../../src/pdu/buffer-pool.js';
import { PduFramer } from '../../../src/pdu/framer.js';
import type { FuzzTarget } from '../engine/fuzz-target.js';
import { Prng } from '../engine/mutate.js';
import { bhs, text, wireBytes } from './wire.js';

class BoundedPool extends BufferPool {
  constructor(private readonly limit: () => number) { super(); }
  override acquire(size: number): Buffer {
    if (size > this.limit()) throw new Error(`framer asked the pool for ${size} bytes over MaxRecvDataSegmentLength ${this.limit()}`);
    return super.acquire(size);
  }
}

/** What the framer reported, as comparable strings. */
function frame(stream: Buffer, cuts: number[], headerDigest: boolean, dataDigest: boolean, maxData: number): string[] {
  const events: string[] = [];
  const framer: PduFramer = new PduFramer(
    (pdu) => {
      if (pdu.bhs.length !== 48) throw new Error(`BHS of ${pdu.bhs.length} bytes`);
      if ((pdu.ahs?.length ?? 0) > 255 * 4) throw new Error(`AHS of ${pdu.ahs!.length} bytes`);
      if (pdu.data.length > maxData) throw new Error(`data segment of ${pdu.data.length} bytes delivered`);
      if (pdu.data.length !== pdu.dataSegmentLength) throw new Error('data segment length differs from the BHS');
      events.push(`pdu ${pdu.bhs.toString('hex')} ${pdu.ahs?.toString('hex') ?? ''} ${pdu.data.toString('hex')}`);
      framer.pool.release(pdu.data);
    },
    (error) => events.push(`error ${error.kind} ${error.bhs.toString('hex')}`),
    new BoundedPool(() => maxData),
  );
  framer.headerDigest = headerDigest;
  framer.dataDigest = dataDigest;
  framer.maxDataSegmentLength = maxData;
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    framer.push(stream.subarray(from, to));
    from = to;
  }
  framer.stop();
  return events;
}

function cutPoints(length: number, seed: number): number[] {
  const rng = new Prng(seed);
  const cuts: number[] = [];
  for (let at = rng.below(64); at < length; at += 1 + rng.below(rng.chance(0.5) ? 8 : 200)) cuts.push(at);
  return cuts;
}

const login = bhs(0x43, 0x87, (b) => { b.writeUInt32BE(1, 16); });
const loginText = text({ InitiatorName: 'iqn.2024-01.fuzz:i', TargetName: 'iqn.2024-01.fuzz:t', AuthMethod: 'None' });
const read10 = bhs(0x01, 0xc0, (b) => { b.writeUInt32BE(2, 16); b.writeUInt32BE(4096, 20); b[32] = 0x28; b[40] = 8; });
const write10 = bhs(0x01, 0xa0, (b) => { b.writeUInt32BE(3, 16); b.writeUInt32BE(512, 20); b[32] = 0x2a; b[40] = 1; });
/** An Extended CDB AHS (RFC 7143 §11.2.2.3: AHSLength 5, type 1, reserved, 4 bytes of CDB). */
const ahs = Buffer.from([0x00, 0x05, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44]);

function seed(flags: number, pdus: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([flags, 4, 0x12, 0x34]), ...pdus]);
}

export const target: FuzzTarget = {
  name: 'framer',
  maxLength: 16384,
  seeds: [
    seed(0, [wireBytes({ bhs: login, data: loginText }), wireBytes({ bhs: read10 })]),
    seed(3, [wireBytes({ bhs: login, data: loginText }, { header: true, data: true }), wireBytes({ bhs: write10, data: Buffer.alloc(512, 0xa5) }, { header: true, data: true })]),
    seed(1, [wireBytes({ bhs: read10, ahs }, { header: true, data: false })]),
    seed(2, [wireBytes({ bhs: write10, data: Buffer.alloc(5, 1) }, { header: false, data: true })]),
  ],
  run(input) {
    if (input.length < 4) return;
    const headerDigest = (input[0]! & 1) !== 0;
    const dataDigest = (input[0]! & 2) !== 0;
    const maxData = 512 << (input[1]! & 7);
    const stream = input.subarray(4);
    const whole = frame(stream, [], headerDigest, dataDigest, maxData);
    const cut = frame(stream, cutPoints(stream.length, input.readUInt16BE(2)), headerDigest, dataDigest, maxData);
    if (whole.join('\n') !== cut.join('\n')) {
      throw new Error(`framing depends on how the stream is cut:\nwhole: ${whole.join('\n')}\ncut:   ${cut.join('\n')}`);
    }
  },
};
