/**
 * Exact VPD 0x83 bytes for e2e assertions that libiscsi's command-line tools cannot express
 * (iscsi-inq prints binary NAA designators with %s, truncating at the first zero byte).
 */
import { TestInitiator } from '../support/test-initiator.js';

export interface Designator {
  protocolId: number;
  codeSet: number;
  piv: boolean;
  association: number;
  type: number;
  value: Buffer;
}

/** Log in, read INQUIRY VPD page 0x83 of `lun` (SPC-4 §7.8.6), log out. */
export async function deviceIdentification(opts: { port: number; targetName: string; initiatorName: string; lun: number }): Promise<Designator[]> {
  const ini = await TestInitiator.connect(opts.port);
  try {
    const login = await ini.login({ targetName: opts.targetName, initiatorName: opts.initiatorName });
    if (login.status !== 0) throw new Error(`login refused: 0x${login.status.toString(16).padStart(4, '0')}`);
    const itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(Buffer.from([0x12, 0x01, 0x83, 0x10, 0x00, 0x00]), { read: true, edtl: 4096, lun: opts.lun }));
    const r = await ini.collect(itt);
    if (r.status !== 0) throw new Error(`INQUIRY VPD 0x83 status 0x${r.status.toString(16)}`);
    if (r.data[1] !== 0x83) throw new Error(`VPD page code ${r.data[1]} != 0x83`);
    await ini.logout();
    return parseDesignators(r.data);
  } finally {
    ini.close();
  }
}

export function parseDesignators(page: Buffer): Designator[] {
  const len = Math.min(page.readUInt16BE(2) + 4, page.length);
  const out: Designator[] = [];
  let off = 4;
  while (off + 4 <= len) {
    const dlen = page[off + 3]!;
    out.push({
      protocolId: page[off]! >> 4,
      codeSet: page[off]! & 0x0f,
      piv: (page[off + 1]! & 0x80) !== 0,
      association: (page[off + 1]! >> 4) & 0x03,
      type: page[off + 1]! & 0x0f,
      value: Buffer.from(page.subarray(off + 4, off + 4 + dlen)),
    });
    off += 4 + dlen;
  }
  return out;
}
