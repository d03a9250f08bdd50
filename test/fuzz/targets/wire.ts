/** Builds iSCSI PDUs on the wire (RFC 7143 §11.2) for seed corpora: BHS, AHS, padding, CRC32C digests. */
import { computeDigest, writeDigest } from '../../../src/pdu/digest.js';

export interface WirePdu {
  bhs: Buffer;
  ahs?: Buffer;
  data?: Buffer;
}

/** A 48-byte BHS with `opcode` and `flags`; `fields` fills in the rest (wireBytes writes the lengths). */
export function bhs(opcode: number, flags: number, fields: (b: Buffer) => void = () => {}): Buffer {
  const b = Buffer.alloc(48);
  b[0] = opcode;
  b[1] = flags;
  fields(b);
  return b;
}

/** The PDU's bytes: lengths written into its BHS, data padded to 4 bytes, digests if asked for. */
export function wireBytes(pdu: WirePdu, digests: { header: boolean; data: boolean } = { header: false, data: false }): Buffer {
  const ahs = pdu.ahs ?? Buffer.alloc(0);
  const data = pdu.data ?? Buffer.alloc(0);
  const b = Buffer.from(pdu.bhs);
  b[4] = ahs.length / 4;
  b.writeUIntBE(data.length, 5, 3);
  const parts = [b, ahs];
  if (digests.header) parts.push(digest(Buffer.concat([b, ahs])));
  if (data.length > 0) {
    const padded = Buffer.concat([data, Buffer.alloc((4 - (data.length & 3)) & 3)]);
    parts.push(padded);
    if (digests.data) parts.push(digest(padded));
  }
  return Buffer.concat(parts);
}

function digest(bytes: Buffer): Buffer {
  const d = Buffer.alloc(4);
  writeDigest(d, 0, computeDigest(bytes));
  return d;
}

export function text(pairs: Record<string, string>): Buffer {
  return Buffer.from(Object.entries(pairs).map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}
