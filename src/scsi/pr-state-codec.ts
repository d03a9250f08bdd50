/**
 * The persisted form of a persistent reservation state (JSON, UTF-8), with the revision the
 * reservation store compares and swaps on. Parsing is strict: a state that cannot be trusted
 * throws, and the logical unit refuses I/O rather than run without the fencing it describes.
 *
 * Version 2 (this release): { version: 2, revision, generation, aptpl, registrations: [{
 * initiatorPort, transportId (hex), targetPort, relativeTargetPortId, key }], reservation }.
 * Version 1 (0.1.0, written only with APTPL = 1): no revision, no aptpl, no transportId, and
 * possibly no relativeTargetPortId; still read.
 */
import {
  MAX_REGISTRATIONS,
  VALID_PR_TYPES,
  isAllRegistrants,
  type PersistentReservation,
  type PrState,
  type Registration,
} from './pr-state.js';
import { encodeIscsiTransportId, parseIscsiTransportId } from './transport-id.js';

interface PersistedRegistration {
  initiatorPort: string;
  transportId?: string;
  targetPort: string | null;
  relativeTargetPortId?: number;
  key: string;
}

interface PersistedState {
  version: 1 | 2;
  revision?: number;
  generation: number;
  aptpl?: boolean;
  registrations: PersistedRegistration[];
  reservation: { type: number; holder: number | null } | null;
}

export interface DecodedPrState {
  /** Store revision (0 for a version 1 file). */
  revision: number;
  state: PrState;
}

export function encodePrState(revision: number, s: PrState): Buffer {
  const p: PersistedState = {
    version: 2,
    revision,
    generation: s.generation,
    aptpl: s.aptpl,
    registrations: s.registrations.map((r) => ({
      initiatorPort: r.initiatorPort,
      transportId: r.transportId.toString('hex'),
      targetPort: r.targetPort?.name ?? null,
      ...(r.targetPort !== null ? { relativeTargetPortId: r.targetPort.relativeId } : {}),
      key: `0x${r.key.toString(16).padStart(16, '0')}`,
    })),
    reservation: s.reservation === null ? null : { type: s.reservation.type, holder: s.reservation.holder === null ? null : s.registrations.indexOf(s.reservation.holder) },
  };
  return Buffer.from(JSON.stringify(p, null, 2) + '\n', 'utf8');
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

/** Parse a persisted state; throws on anything malformed. */
export function decodePrState(buf: Buffer): DecodedPrState {
  const p = JSON.parse(buf.toString('utf8')) as Partial<PersistedState> | null;
  const v2 = p?.version === 2;
  if (p === null || typeof p !== 'object' || (p.version !== 1 && !v2)) throw new Error('not a version 1 or 2 PR state');
  if (!isUint(p.generation, 0xffffffff) || !Array.isArray(p.registrations)) throw new Error('generation or registrations missing');
  if (v2 && (!isUint(p.revision, Number.MAX_SAFE_INTEGER) || typeof p.aptpl !== 'boolean')) throw new Error('revision or aptpl missing');
  if (p.registrations.length > MAX_REGISTRATIONS) throw new Error(`more than ${MAX_REGISTRATIONS} registrations`);
  const regs = p.registrations.map((r, i) => decodeRegistration(r, i, v2));
  const seen = new Set<string>();
  for (const r of regs) {
    const id = `${r.initiatorPort}\u0000${r.targetPort?.name ?? ''}`;
    if (seen.has(id)) throw new Error(`registration of ${r.initiatorPort} appears twice`);
    seen.add(id);
  }
  return {
    revision: v2 ? p.revision! : 0,
    // Version 1 files were written only while APTPL was 1.
    state: { generation: p.generation, aptpl: v2 ? p.aptpl! : true, registrations: regs, reservation: decodeReservation(p.reservation, regs) },
  };
}

function decodeRegistration(r: PersistedRegistration | undefined, i: number, v2: boolean): Registration {
  if (typeof r?.initiatorPort !== 'string' || !(typeof r.targetPort === 'string' || r.targetPort === null) || typeof r.key !== 'string' || !/^0x[0-9a-f]{1,16}$/i.test(r.key)) {
    throw new Error(`registration ${i} is malformed`);
  }
  const key = BigInt(r.key);
  if (key === 0n) throw new Error(`registration ${i} has key 0`);
  const initiatorPort = r.initiatorPort.toLowerCase();
  let transportId: Buffer;
  if (v2) {
    if (typeof r.transportId !== 'string' || !/^([0-9a-f]{2})+$/i.test(r.transportId)) throw new Error(`registration ${i} has no TransportID`);
    transportId = Buffer.from(r.transportId, 'hex');
    const parsed = parseIscsiTransportId(transportId);
    if ('error' in parsed || parsed.initiatorPort !== initiatorPort || parsed.length !== transportId.length) {
      throw new Error(`registration ${i}: TransportID does not name ${initiatorPort}`);
    }
  } else {
    transportId = encodeIscsiTransportId(initiatorPort);
  }
  let targetPort: Registration['targetPort'] = null;
  if (r.targetPort !== null) {
    const rel = r.relativeTargetPortId ?? (v2 ? undefined : legacyRelativeId(r.targetPort));
    if (!isUint(rel, 0xffff) || rel === 0) throw new Error(`registration ${i} has no relative target port id`);
    targetPort = { name: r.targetPort.toLowerCase(), relativeId: rel };
  }
  return { initiatorPort, transportId, targetPort, key };
}

function decodeReservation(p: PersistedState['reservation'] | undefined, regs: Registration[]): PersistentReservation | null {
  if (!p) return null;
  const { type, holder } = p;
  if (!VALID_PR_TYPES.has(type)) throw new Error(`reservation type ${type} is invalid`);
  if (isAllRegistrants(type)) {
    if (holder !== null || regs.length === 0) throw new Error('all-registrants reservation is malformed');
    return { type, holder: null };
  }
  if (typeof holder !== 'number' || regs[holder] === undefined) throw new Error('reservation holder is not a registration');
  return { type, holder: regs[holder]! };
}

/**
 * Files written by 0.1.0 stored only the target port name "<target>,t,0x<TPGT>"; its relative
 * port id was the TPGT (1 for TPGT 0), as VPD page 83h reported it.
 */
function legacyRelativeId(targetPort: string): number {
  const m = /,t,0x([0-9a-f]+)$/i.exec(targetPort);
  const tpgt = m ? parseInt(m[1]!, 16) & 0xffff : 0;
  return tpgt === 0 ? 1 : tpgt;
}
