/**
 * Request PDUs a peer might send after login, and the ways the network fuzzer breaks them: bit
 * flips, length fields changed, truncation, random opcodes, F/C bits toggled, huge
 * DataSegmentLength or TotalAHSLength, CmdSN outside the window, digests corrupted.
 */
import { computeDigest, writeDigest } from '../../../src/pdu/digest.js';
import type { Prng } from '../engine/mutate.js';

export interface SessionNumbers {
  cmdSN: number;
  expStatSN: number;
  itt: number;
  headerDigest: boolean;
  dataDigest: boolean;
}

interface Request { bhs: Buffer; data: Buffer }

const CDBS = [
  [0x00], [0x12, 0, 0, 0, 0xff], [0x25], [0x28, 0, 0, 0, 0, 0, 0, 0, 8], [0x2a, 0, 0, 0, 0, 8, 0, 0, 8],
  [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32], [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40], [0x5e, 0, 0, 0, 0, 0, 0, 0x10, 0],
  [0x35], [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0], [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
];

function header(opcode: number, flags: number, s: SessionNumbers): Buffer {
  const h = Buffer.alloc(48);
  h[0] = opcode;
  h[1] = flags;
  h.writeUInt32BE(s.itt++ >>> 0, 16);
  h.writeUInt32BE(s.cmdSN, 24);
  h.writeUInt32BE(s.expStatSN, 28);
  return h;
}

/** A well-formed request of a random kind (SCSI Command, Data-Out, NOP-Out, Text, TMF, Logout, Login, SNACK). */
function request(rng: Prng, s: SessionNumbers): Request {
  switch (rng.below(8)) {
    case 0: case 1: {
      const cdb = Buffer.from(rng.pick(CDBS));
      const write = cdb[0] === 0x2a || cdb[0] === 0x93;
      const edtl = write ? 4096 : cdb[0] === 0x28 ? 4096 : 255;
      const h = header(0x01, 0x80 | (write ? 0x20 : 0x40) | 1, s);
      h.writeUInt32BE(edtl, 20);
      cdb.copy(h, 32);
      s.cmdSN = (s.cmdSN + 1) >>> 0;
      return { bhs: h, data: write ? rng.bytes(rng.below(2) === 0 ? 4096 : 512) : Buffer.alloc(0) };
    }
    case 2: {
      const h = header(0x05, rng.chance(0.5) ? 0x80 : 0, s);
      h.writeUInt32BE(rng.below(4), 20); // TTT
      h.writeUInt32BE(rng.below(3), 36); // DataSN
      h.writeUInt32BE(rng.below(8) * 512, 40); // offset
      return { bhs: h, data: rng.bytes(512) };
    }
    case 3: {
      const h = header(0x40 | 0x00, 0x80, s);
      h.writeUInt32BE(0xffffffff, 20);
      return { bhs: h, data: rng.bytes(rng.below(64)) };
    }
    case 4: {
      const h = header(0x04, 0x80, s);
      h.writeUInt32BE(0xffffffff, 20);
      s.cmdSN = (s.cmdSN + 1) >>> 0;
      return { bhs: h, data: Buffer.from(rng.pick(['SendTargets=All\0', 'MaxBurstLength=4096\0', 'X-fuzz=1\0'])) };
    }
    case 5: {
      const h = header(0x40 | 0x02, 0x80 | (1 + rng.below(8)), s);
      h.writeUInt32BE((s.itt - 1 - rng.below(4)) >>> 0, 20);
      return { bhs: h, data: Buffer.alloc(0) };
    }
    case 6: {
      const h = header(rng.chance(0.5) ? 0x06 : 0x43, 0x80 | rng.below(3), s);
      return { bhs: h, data: rng.chance(0.5) ? Buffer.from('InitiatorName=iqn.2024-01.fuzz:x\0') : Buffer.alloc(0) };
    }
    default:
      return { bhs: header(0x10, 0x80 | rng.below(4), s), data: Buffer.alloc(0) };
  }
}

function withDigest(bytes: Buffer): Buffer {
  const d = Buffer.alloc(4);
  writeDigest(d, 0, computeDigest(bytes));
  return Buffer.concat([bytes, d]);
}

/** The request's bytes on the wire, lengths and digests as the session has them. */
function wire(r: Request, s: SessionNumbers, ahs: Buffer = Buffer.alloc(0)): Buffer {
  r.bhs[4] = ahs.length / 4;
  r.bhs.writeUIntBE(r.data.length, 5, 3);
  const head = Buffer.concat([r.bhs, ahs]);
  const parts: Buffer[] = [s.headerDigest ? withDigest(head) : head];
  if (r.data.length > 0) {
    const padded = Buffer.concat([r.data, Buffer.alloc((4 - (r.data.length & 3)) & 3)]);
    parts.push(s.dataDigest ? withDigest(padded) : padded);
  }
  return Buffer.concat(parts);
}

/** Changes to a request's header fields, before it is put on the wire. */
type Edit = (r: Request, rng: Prng, s: SessionNumbers) => void;

const EDITS: Edit[] = [
  (r, rng) => { r.bhs[0] = (r.bhs[0]! & 0x40) | rng.below(64); },
  (r, rng) => { r.bhs[1]! ^= rng.pick([0x80, 0x40, 0xc0]); },
  (r, rng, s) => { r.bhs.writeUInt32BE((s.cmdSN + rng.pick([-1, 1000, 0x7fffffff, 0x80000000, 200])) >>> 0, 24); },
  (r, rng) => { r.bhs.writeUInt32BE(rng.u32(), rng.pick([16, 20, 36, 40])); },
];

/** Ways to put a request on the wire broken. */
type Mutation = (r: Request, rng: Prng, s: SessionNumbers) => Buffer;

const MUTATIONS: Mutation[] = [
  (r, rng, s) => { const b = wire(r, s); for (let i = 1 + rng.below(4); i > 0; i--) b[rng.below(Math.min(b.length, 48))]! ^= 1 << rng.below(8); return b; },
  (r, rng, s) => { const b = wire(r, s); b[rng.below(b.length)]! ^= 1 << rng.below(8); return b; },
  (r, rng, s) => { const b = wire(r, s); b.writeUIntBE(rng.pick([0xffffff, 0x40000, 0x10000, r.data.length + 4, 1, 0]), 5, 3); return b; },
  (r, rng, s) => { const b = wire(r, s); b[4] = rng.pick([255, 1, 17, 64]); return b; },
  (r, rng, s) => wire(r, s, rng.bytes(4 * (1 + rng.below(8)))),
  (r, rng, s) => { const b = wire(r, s); return b.subarray(0, rng.below(b.length)); },
  (r, _rng, s) => { const b = wire(r, s); if (s.headerDigest || s.dataDigest) b[b.length - 1]! ^= 0xff; return b; },
  ...EDITS.map((edit): Mutation => (r, rng, s) => { edit(r, rng, s); return wire(r, s); }),
  (r, _rng, s) => wire(r, s),
];

/** Bytes of one request, broken by one or two of the mutations (or, now and then, intact). */
export function mutatedRequest(rng: Prng, s: SessionNumbers): Buffer {
  const r = request(rng, s);
  if (rng.chance(0.3)) rng.pick(EDITS)(r, rng, s);
  return rng.pick(MUTATIONS)(r, rng, s);
}
