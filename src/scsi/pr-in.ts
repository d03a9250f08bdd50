/** PERSISTENT RESERVE IN (SPC-4 §6.15): answers from a persistent reservation state. */
import { truncate } from './cdb.js';
import { isHolder, type PrState } from './pr-state.js';
import { good, invalidFieldInCdb } from './sense.js';
import type { ScsiRequest, ScsiResponse } from './types.js';

/** PERSISTENT RESERVE IN service actions (SPC-4 §6.15.1). */
export const PrinSa = { READ_KEYS: 0, READ_RESERVATION: 1, REPORT_CAPABILITIES: 2, READ_FULL_STATUS: 3 } as const;

export function persistentReserveIn(req: ScsiRequest, s: PrState): ScsiResponse {
  const c = req.cdb;
  const alloc = c.readUInt16BE(7);
  switch (c[1]! & 0x1f) {
    case PrinSa.READ_KEYS:
      return good(truncate(readKeys(s), alloc));
    case PrinSa.READ_RESERVATION:
      return good(truncate(readReservation(s), alloc));
    case PrinSa.REPORT_CAPABILITIES:
      return good(truncate(reportCapabilities(s), alloc));
    case PrinSa.READ_FULL_STATUS:
      return good(truncate(readFullStatus(s), alloc));
    default:
      return invalidFieldInCdb(1, 4);
  }
}

/** SPC-4 §6.15.2. */
function readKeys(s: PrState): Buffer {
  const out = Buffer.alloc(8 + 8 * s.registrations.length);
  out.writeUInt32BE(s.generation, 0);
  out.writeUInt32BE(8 * s.registrations.length, 4);
  s.registrations.forEach((r, i) => out.writeBigUInt64BE(r.key, 8 + 8 * i));
  return out;
}

/** SPC-4 §6.15.3. */
function readReservation(s: PrState): Buffer {
  const res = s.reservation;
  const out = Buffer.alloc(res === null ? 8 : 24);
  out.writeUInt32BE(s.generation, 0);
  if (res !== null) {
    out.writeUInt32BE(16, 4);
    // All-registrants types report a reservation key of zero (SPC-4 §6.15.3.3).
    out.writeBigUInt64BE(res.holder === null ? 0n : res.holder.key, 8);
    out[21] = res.type; // SCOPE 0h (LU_SCOPE) | TYPE
  }
  return out;
}

/** SPC-4 §6.15.4. */
function reportCapabilities(s: PrState): Buffer {
  const out = Buffer.alloc(8);
  out.writeUInt16BE(8, 0);
  // CRH = 1, SIP_C = 0 (SPEC_I_PT not supported), ATP_C = 1, PTPL_C = 1.
  out[2] = 0x10 | 0x04 | 0x01;
  // TMV = 1, ALLOW COMMANDS 000b (not reported), PTPL_A.
  out[3] = 0x80 | (s.aptpl ? 0x01 : 0);
  // PERSISTENT RESERVATION TYPE MASK: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX | EX_AC_AR.
  out[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
  out[5] = 0x01;
  return out;
}

/** SPC-4 §6.15.5: one descriptor per registration, with the initiator port's TransportID. */
function readFullStatus(s: PrState): Buffer {
  const descs: Buffer[] = [];
  for (const r of s.registrations) {
    const tid = r.transportId;
    const d = Buffer.alloc(24 + tid.length);
    d.writeBigUInt64BE(r.key, 0);
    const holder = isHolder(s, r);
    d[12] = (r.targetPort === null ? 0x02 : 0) | (holder ? 0x01 : 0); // ALL_TG_PT | R_HOLDER
    if (holder) d[13] = s.reservation!.type;
    d.writeUInt16BE(r.targetPort === null ? 0 : r.targetPort.relativeId, 18);
    d.writeUInt32BE(tid.length, 20);
    tid.copy(d, 24);
    descs.push(d);
  }
  const body = Buffer.concat(descs);
  const out = Buffer.alloc(8 + body.length);
  out.writeUInt32BE(s.generation, 0);
  out.writeUInt32BE(body.length, 4);
  body.copy(out, 8);
  return out;
}
