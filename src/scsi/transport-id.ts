/**
 * TransportID for iSCSI (SPC-4 §7.6.4.6): PROTOCOL IDENTIFIER 5h. Format 00b names an initiator
 * device ("<iSCSI name>"), format 01b an initiator port ("<iSCSI name>,i,0x<ISID>"). This device
 * reports and accepts format 01b (every I_T nexus has an ISID).
 */

const PROTOCOL_ISCSI = 0x5;
const FORMAT_INITIATOR_PORT = 1;
/** ADDITIONAL LENGTH: at least 20, a multiple of four (SPC-4 §7.6.4.6). */
const MIN_ADDITIONAL_LENGTH = 20;

export type TransportIdError = 'format' | 'length';

/** TransportID format 01b of an initiator port, NUL-terminated and padded to a multiple of four. */
export function encodeIscsiTransportId(initiatorPort: string): Buffer {
  const name = Buffer.from(initiatorPort, 'utf8');
  const len = Math.max(MIN_ADDITIONAL_LENGTH, (name.length + 1 + 3) & ~3);
  const b = Buffer.alloc(4 + len);
  b[0] = (FORMAT_INITIATOR_PORT << 6) | PROTOCOL_ISCSI;
  b.writeUInt16BE(len, 2);
  name.copy(b, 4);
  return b;
}

/** Parse an iSCSI TransportID of format 01b: the initiator port (lower case) and the bytes it took. */
export function parseIscsiTransportId(b: Buffer): { initiatorPort: string; length: number } | { error: TransportIdError } {
  if (b.length < 4) return { error: 'length' };
  if ((b[0]! & 0x0f) !== PROTOCOL_ISCSI) return { error: 'format' };
  const len = b.readUInt16BE(2);
  if (len < MIN_ADDITIONAL_LENGTH || len % 4 !== 0 || 4 + len > b.length) return { error: 'length' };
  if (b[0]! >> 6 !== FORMAT_INITIATOR_PORT) return { error: 'format' };
  const body = b.subarray(4, 4 + len);
  const nul = body.indexOf(0);
  const text = body.subarray(0, nul < 0 ? body.length : nul).toString('utf8');
  const m = /^(.+),i,0x([0-9a-fA-F]{12})$/.exec(text);
  if (!m) return { error: 'format' };
  return { initiatorPort: `${m[1]!},i,0x${m[2]!}`.toLowerCase(), length: 4 + len };
}
