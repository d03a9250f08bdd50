/**
 * Reservations of one logical unit: SPC-4 persistent reservations (§5.13, PERSISTENT RESERVE
 * IN/OUT §6.15/§6.16) and SPC-2 RESERVE/RELEASE (6/10), with the interaction SPC-4 §5.13.3
 * defines for CRH = 1.
 *
 * A registration names an initiator port and one target port, or every target port (ALL_TG_PT),
 * taken from the structured I_T nexus (nexus.ts).
 *
 * Persist Through Power Loss: when the last REGISTER / REGISTER AND IGNORE EXISTING KEY /
 * REGISTER AND MOVE had APTPL = 1, every change is written to the backend's "pr.json" sidecar
 * (atomically, see BlockBackend.writeSidecar) before the command completes, and read back when
 * the logical unit starts. A state change that cannot be persisted is not made.
 */
import type { BlockBackend } from '../backend/block-backend.js';
import { truncate } from './cdb.js';
import type { DeviceContext, ReservationClass } from './command-table.js';
import {
  Asc,
  SenseKey,
  good,
  internalTargetFailure,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  reservationConflict,
  senseError,
} from './sense.js';
import type { ItNexus, TargetPort } from './nexus.js';
import { encodeIscsiTransportId, parseIscsiTransportId } from './transport-id.js';
import type { ScsiRequest, ScsiResponse } from './types.js';
import type { UnitAttentions } from './unit-attention.js';

/** PERSISTENT RESERVATION TYPE codes (SPC-4 §6.16.3, Table 172). */
export const PrType = {
  WRITE_EXCLUSIVE: 1,
  EXCLUSIVE_ACCESS: 3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 8,
} as const;

const VALID_TYPES = new Set<number>([1, 3, 5, 6, 7, 8]);

/** PERSISTENT RESERVE OUT service actions (SPC-4 §6.16.2). */
export const ProutSa = {
  REGISTER: 0,
  RESERVE: 1,
  RELEASE: 2,
  CLEAR: 3,
  PREEMPT: 4,
  PREEMPT_AND_ABORT: 5,
  REGISTER_AND_IGNORE_EXISTING_KEY: 6,
  REGISTER_AND_MOVE: 7,
} as const;

/** PERSISTENT RESERVE IN service actions (SPC-4 §6.15.1). */
export const PrinSa = { READ_KEYS: 0, READ_RESERVATION: 1, REPORT_CAPABILITIES: 2, READ_FULL_STATUS: 3 } as const;

/** The parts of an I_T nexus a registration is matched against. */
type NexusPortNames = { readonly initiatorPort: string; readonly targetPort: Pick<TargetPort, 'name'> };

/** Does registration `r` cover the nexus (same initiator port; its target port, or ALL_TG_PT)? */
function covers(r: Registration, n: NexusPortNames): boolean {
  return r.initiatorPort === n.initiatorPort && (r.targetPort === null || r.targetPort.name === n.targetPort.name);
}

function registeredPort(n: ItNexus): RegisteredPort {
  return { name: n.targetPort.name, relativeId: n.targetPort.relativeId };
}

function isAllRegistrants(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || type === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
}
function isRegistrantsType(type: number): boolean {
  return type >= PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY;
}
function isWriteExclusive(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE || type === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS;
}

/** The target port a registration was made through: its name and RELATIVE TARGET PORT IDENTIFIER. */
export interface RegisteredPort {
  readonly name: string;
  readonly relativeId: number;
}

export interface Registration {
  readonly initiatorPort: string;
  /** null: registered through every target port (ALL_TG_PT = 1). */
  readonly targetPort: RegisteredPort | null;
  key: bigint;
}

export interface PersistentReservation {
  readonly type: number;
  /** The registration holding it; null for the all-registrants types (every registrant holds it). */
  readonly holder: Registration | null;
}

interface PrState {
  generation: number;
  aptpl: boolean;
  registrations: Registration[];
  reservation: PersistentReservation | null;
}

/** The sidecar file name persistent reservations are kept in (next to the LUN file). */
export const PR_SIDECAR = 'pr.json';

interface PersistedState {
  version: 1;
  generation: number;
  aptpl: true;
  registrations: { initiatorPort: string; targetPort: string | null; relativeTargetPortId?: number; key: string }[];
  reservation: { type: number; holder: number | null } | null;
}

function cloneState(s: PrState): PrState {
  const regs = s.registrations.map((r) => ({ ...r }));
  const res = s.reservation;
  return {
    generation: s.generation,
    aptpl: s.aptpl,
    registrations: regs,
    reservation: res === null ? null : { type: res.type, holder: res.holder === null ? null : regs[s.registrations.indexOf(res.holder)]! },
  };
}

function serialize(s: PrState): Buffer {
  const p: PersistedState = {
    version: 1,
    generation: s.generation,
    aptpl: true,
    registrations: s.registrations.map((r) => ({
      initiatorPort: r.initiatorPort,
      targetPort: r.targetPort?.name ?? null,
      ...(r.targetPort !== null ? { relativeTargetPortId: r.targetPort.relativeId } : {}),
      key: `0x${r.key.toString(16).padStart(16, '0')}`,
    })),
    reservation: s.reservation === null ? null : { type: s.reservation.type, holder: s.reservation.holder === null ? null : s.registrations.indexOf(s.reservation.holder) },
  };
  return Buffer.from(JSON.stringify(p, null, 2) + '\n', 'utf8');
}

/** Parse a persisted state; throws on anything malformed (the caller refuses to run on a state it cannot trust). */
export function parsePersistedState(buf: Buffer): PrState {
  const p = JSON.parse(buf.toString('utf8')) as Partial<PersistedState>;
  if (p.version !== 1 || typeof p.generation !== 'number' || !Array.isArray(p.registrations)) throw new Error('not a version 1 PR state');
  const regs: Registration[] = p.registrations.map((r, i) => {
    if (typeof r?.initiatorPort !== 'string' || !(typeof r.targetPort === 'string' || r.targetPort === null) || typeof r.key !== 'string' || !/^0x[0-9a-f]{1,16}$/i.test(r.key)) {
      throw new Error(`registration ${i} is malformed`);
    }
    const key = BigInt(r.key);
    if (key === 0n) throw new Error(`registration ${i} has key 0`);
    const port = r.targetPort === null ? null : { name: r.targetPort.toLowerCase(), relativeId: r.relativeTargetPortId ?? legacyRelativeId(r.targetPort) };
    return { initiatorPort: r.initiatorPort.toLowerCase(), targetPort: port, key };
  });
  let reservation: PersistentReservation | null = null;
  if (p.reservation) {
    const { type, holder } = p.reservation;
    if (!VALID_TYPES.has(type)) throw new Error(`reservation type ${type} is invalid`);
    if (isAllRegistrants(type)) {
      if (holder !== null || regs.length === 0) throw new Error('all-registrants reservation is malformed');
      reservation = { type, holder: null };
    } else {
      if (typeof holder !== 'number' || regs[holder] === undefined) throw new Error('reservation holder is not a registration');
      reservation = { type, holder: regs[holder]! };
    }
  }
  return { generation: p.generation >>> 0, aptpl: true, registrations: regs, reservation };
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

/** UNIT ATTENTION conditions a change establishes, applied only once the change is committed. */
type PendingUa = { code: number; regs: Registration[] };

function insufficientResourcesOrFailure(err: unknown): ScsiResponse {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INSUFFICIENT_REGISTRATION_RESOURCES);
  return internalTargetFailure();
}

export interface ReservationHost {
  readonly lun: number;
  readonly backend: BlockBackend;
  readonly unitAttentions: UnitAttentions;
}

export class Reservations {
  private state: PrState = { generation: 0, aptpl: false, registrations: [], reservation: null };
  /** SPC-2 RESERVE holder (I_T nexus id), if any. */
  private spc2Holder: string | undefined;
  /** Serializes PERSISTENT RESERVE OUT (and RESERVE/RELEASE) so persistence never interleaves. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly host: ReservationHost) {}

  /** Load a persisted (APTPL) state. Throws if the sidecar exists but cannot be read or trusted. */
  async load(): Promise<void> {
    const read = this.host.backend.readSidecar;
    if (read === undefined) return;
    const buf = await read.call(this.host.backend, PR_SIDECAR);
    if (buf === undefined) return;
    this.state = parsePersistedState(buf);
  }

  /** True when nothing is reserved (the hot path skips every other check). */
  get idle(): boolean {
    return this.state.reservation === null && this.spc2Holder === undefined;
  }

  get spc2ReservedBy(): string | undefined {
    return this.spc2Holder;
  }

  /** Current persistent reservation state (for tests and diagnostics). */
  get persistent(): Readonly<PrState> {
    return this.state;
  }

  // --- conflicts ------------------------------------------------------------------------------

  private registrationOf(s: PrState, nexus: NexusPortNames): Registration | undefined {
    return s.registrations.find((r) => covers(r, nexus));
  }

  private isHolder(s: PrState, reg: Registration | undefined): boolean {
    const res = s.reservation;
    if (res === null || reg === undefined) return false;
    return res.holder === null ? true : res.holder === reg;
  }

  /** Does a command of class `cls` from `nexus` conflict with the reservations held? */
  conflicts(cls: ReservationClass, nexus: ItNexus): boolean {
    if (cls === 'exempt' || cls === 'spc2') return false;
    const spc2 = this.spc2Holder;
    if (spc2 !== undefined) {
      // SPC-2 §5.5.1: PERSISTENT RESERVE IN/OUT conflict under a RESERVE from any nexus.
      if (cls === 'pr') return true;
      if (spc2 !== nexus.id) return true;
      return false;
    }
    if (cls === 'pr' || cls === 'allowed') return false;
    const s = this.state;
    const res = s.reservation;
    if (res === null) return false;
    const reg = this.registrationOf(s, nexus);
    if (this.isHolder(s, reg)) return false;
    // Registrants-only and all-registrants types give every registrant full access.
    if (reg !== undefined && isRegistrantsType(res.type)) return false;
    return cls === 'write' || !isWriteExclusive(res.type);
  }

  // --- SPC-2 RESERVE / RELEASE ------------------------------------------------------------------

  /**
   * RESERVE(6)/(10), SPC-2 §7.21/§7.22 with SPC-4 §5.13.3 (CRH = 1): from a persistent
   * reservation holder (or a registrant under a registrants-only / all-registrants type) GOOD
   * without effect; else RESERVATION CONFLICT while any registration exists.
   */
  reserve(nexus: ItNexus): ScsiResponse {
    const s = this.state;
    if (s.registrations.length !== 0) {
      const reg = this.registrationOf(s, nexus);
      if (s.reservation !== null && (this.isHolder(s, reg) || (reg !== undefined && isRegistrantsType(s.reservation.type)))) return good();
      return reservationConflict();
    }
    if (this.spc2Holder !== undefined && this.spc2Holder !== nexus.id) return reservationConflict();
    this.spc2Holder = nexus.id;
    return good();
  }

  /** RELEASE(6)/(10): releases the holder's reservation; from anyone else GOOD without effect. */
  release(nexus: ItNexus): ScsiResponse {
    const s = this.state;
    if (s.registrations.length !== 0) {
      const reg = this.registrationOf(s, nexus);
      if (s.reservation !== null && (this.isHolder(s, reg) || (reg !== undefined && isRegistrantsType(s.reservation.type)))) return good();
      return reservationConflict();
    }
    if (this.spc2Holder === nexus.id) this.spc2Holder = undefined;
    return good();
  }

  /** LOGICAL UNIT RESET / hard reset (SPC-2 §5.5.1): SPC-2 reservations end; persistent ones stay. */
  reset(): void {
    this.spc2Holder = undefined;
  }

  /** I_T nexus loss: the nexus' SPC-2 reservation ends (persistent reservations and registrations stay). */
  nexusLost(nexus: ItNexus): void {
    if (this.spc2Holder === nexus.id) this.spc2Holder = undefined;
  }

  // --- PERSISTENT RESERVE IN ------------------------------------------------------------------

  persistentReserveIn(req: ScsiRequest): ScsiResponse {
    const c = req.cdb;
    const sa = c[1]! & 0x1f;
    const alloc = c.readUInt16BE(7);
    const s = this.state;
    switch (sa) {
      case PrinSa.READ_KEYS: {
        const out = Buffer.alloc(8 + 8 * s.registrations.length);
        out.writeUInt32BE(s.generation, 0);
        out.writeUInt32BE(8 * s.registrations.length, 4);
        s.registrations.forEach((r, i) => out.writeBigUInt64BE(r.key, 8 + 8 * i));
        return good(truncate(out, alloc));
      }
      case PrinSa.READ_RESERVATION: {
        const res = s.reservation;
        const out = Buffer.alloc(res === null ? 8 : 24);
        out.writeUInt32BE(s.generation, 0);
        if (res !== null) {
          out.writeUInt32BE(16, 4);
          // All-registrants types report a reservation key of zero (SPC-4 §6.15.3.3).
          out.writeBigUInt64BE(res.holder === null ? 0n : res.holder.key, 8);
          out[21] = res.type; // SCOPE 0h (LU_SCOPE) | TYPE
        }
        return good(truncate(out, alloc));
      }
      case PrinSa.REPORT_CAPABILITIES: {
        const out = Buffer.alloc(8);
        out.writeUInt16BE(8, 0);
        // CRH = 1, SIP_C = 0 (SPEC_I_PT not supported), ATP_C = 1, PTPL_C = 1.
        out[2] = 0x10 | 0x04 | 0x01;
        // TMV = 1, ALLOW COMMANDS 000b (not reported), PTPL_A.
        out[3] = 0x80 | (s.aptpl ? 0x01 : 0);
        // PERSISTENT RESERVATION TYPE MASK: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX | EX_AC_AR.
        out[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
        out[5] = 0x01;
        return good(truncate(out, alloc));
      }
      case PrinSa.READ_FULL_STATUS: {
        const descs: Buffer[] = [];
        for (const r of s.registrations) {
          const tid = encodeIscsiTransportId(r.initiatorPort);
          const d = Buffer.alloc(24 + tid.length);
          d.writeBigUInt64BE(r.key, 0);
          const holder = this.isHolder(s, r);
          d[12] = (r.targetPort === null ? 0x02 : 0) | (holder ? 0x01 : 0);
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
        return good(truncate(out, alloc));
      }
      default:
        return invalidFieldInCdb(1, 4);
    }
  }

  // --- PERSISTENT RESERVE OUT -----------------------------------------------------------------

  persistentReserveOut(req: ScsiRequest, dev: DeviceContext): Promise<ScsiResponse> {
    const run = this.queue.then(() => this.prout(req, dev));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async prout(req: ScsiRequest, dev: DeviceContext): Promise<ScsiResponse> {
    const c = req.cdb;
    const sa = c[1]! & 0x1f;
    const scope = c[2]! >> 4;
    const type = c[2]! & 0x0f;
    const listLen = c.readUInt32BE(5);
    if (sa > ProutSa.REGISTER_AND_MOVE) return invalidFieldInCdb(1, 4);

    // Parameter list (SPC-4 §6.16.3): 24 bytes, longer only for REGISTER AND MOVE's TransportID.
    if (sa === ProutSa.REGISTER_AND_MOVE ? listLen < 24 : listLen !== 24) return parameterListLengthError();
    const data = req.dataOut;
    if (data === undefined || data.length < listLen) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_INFORMATION_UNIT);
    const p = data.subarray(0, listLen);
    const key = p.readBigUInt64BE(0);
    const saKey = p.readBigUInt64BE(8);

    if (sa === ProutSa.REGISTER_AND_MOVE) return this.registerAndMove(req.nexus, p, scope, type);

    const flags = p[20]!;
    if (flags & 0x08) return invalidFieldInParameterList(20, 3); // SPEC_I_PT: SIP_C = 0
    const allTgPt = (flags & 0x04) !== 0;
    const aptpl = (flags & 0x01) !== 0;

    const needsType = sa === ProutSa.RESERVE || sa === ProutSa.RELEASE || sa === ProutSa.PREEMPT || sa === ProutSa.PREEMPT_AND_ABORT;
    if (needsType) {
      if (scope !== 0) return invalidFieldInCdb(2, 7);
      if (!VALID_TYPES.has(type)) return invalidFieldInCdb(2, 3);
    }

    const cur = this.state;
    const reg = this.registrationOf(cur, req.nexus);

    switch (sa) {
      case ProutSa.REGISTER:
      case ProutSa.REGISTER_AND_IGNORE_EXISTING_KEY: {
        const ignore = sa === ProutSa.REGISTER_AND_IGNORE_EXISTING_KEY;
        if (reg === undefined) {
          if (!ignore && key !== 0n) return reservationConflict();
          if (saKey === 0n) return good(); // unregistered nexus unregistering: nothing to do
          const next = cloneState(cur);
          next.registrations.push({ initiatorPort: req.nexus.initiatorPort, targetPort: allTgPt ? null : registeredPort(req.nexus), key: saKey });
          next.aptpl = aptpl;
          next.generation = (next.generation + 1) >>> 0;
          return this.commit(next, []);
        }
        if (!ignore && key !== reg.key) return reservationConflict();
        const next = cloneState(cur);
        const nreg = next.registrations[cur.registrations.indexOf(reg)]!;
        const uas: PendingUa[] = [];
        if (saKey === 0n) this.unregister(next, nreg, uas);
        else nreg.key = saKey;
        next.aptpl = aptpl;
        next.generation = (next.generation + 1) >>> 0;
        return this.commit(next, uas, req.nexus);
      }

      case ProutSa.RESERVE: {
        if (reg === undefined || key !== reg.key) return reservationConflict();
        const res = cur.reservation;
        if (res !== null) {
          // The holder may re-reserve with the same type (no change); anything else conflicts.
          if (this.isHolder(cur, reg) && res.type === type) return good();
          return reservationConflict();
        }
        const next = cloneState(cur);
        const nreg = next.registrations[cur.registrations.indexOf(reg)]!;
        next.reservation = { type, holder: isAllRegistrants(type) ? null : nreg };
        return this.commit(next, []);
      }

      case ProutSa.RELEASE: {
        if (reg === undefined || key !== reg.key) return reservationConflict();
        const res = cur.reservation;
        if (res === null || !this.isHolder(cur, reg)) return good();
        if (res.type !== type) return senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_RELEASE_OF_PERSISTENT_RESERVATION);
        const next = cloneState(cur);
        next.reservation = null;
        const uas: PendingUa[] = [];
        if (isRegistrantsType(res.type)) {
          // SPC-4 §5.13.11.2: releasing a registrants-only / all-registrants reservation tells
          // every other registrant.
          uas.push({ code: Asc.RESERVATIONS_RELEASED, regs: [...next.registrations] });
        }
        return this.commit(next, uas, req.nexus);
      }

      case ProutSa.CLEAR: {
        if (reg === undefined || key !== reg.key) return reservationConflict();
        const next = cloneState(cur);
        const others = next.registrations.filter((r) => r !== next.registrations[cur.registrations.indexOf(reg)]);
        next.registrations = [];
        next.reservation = null;
        next.generation = (next.generation + 1) >>> 0;
        return this.commit(next, [{ code: Asc.RESERVATIONS_PREEMPTED, regs: others }], req.nexus);
      }

      case ProutSa.PREEMPT:
      case ProutSa.PREEMPT_AND_ABORT:
        if (reg === undefined || key !== reg.key) return reservationConflict();
        return this.preempt(req, dev, cur, reg, saKey, type, sa === ProutSa.PREEMPT_AND_ABORT);
    }
    return invalidFieldInCdb(1, 4);
  }

  /** Remove `reg` from `next`; a reservation it held is released (SPC-4 §5.13.11.3). */
  private unregister(next: PrState, reg: Registration, uas: PendingUa[]): void {
    next.registrations = next.registrations.filter((r) => r !== reg);
    const res = next.reservation;
    if (res === null) return;
    if (res.holder === null) {
      // All-registrants: the reservation lasts while anyone is registered.
      if (next.registrations.length === 0) next.reservation = null;
      return;
    }
    if (res.holder !== reg) return;
    next.reservation = null;
    if (isRegistrantsType(res.type)) uas.push({ code: Asc.RESERVATIONS_RELEASED, regs: [...next.registrations] });
  }

  /** PREEMPT / PREEMPT AND ABORT, SPC-4 §5.13.11.4. */
  private async preempt(
    req: ScsiRequest,
    dev: DeviceContext,
    cur: PrState,
    reg: Registration,
    saKey: bigint,
    type: number,
    abort: boolean,
  ): Promise<ScsiResponse> {
    const next = cloneState(cur);
    const me = next.registrations[cur.registrations.indexOf(reg)]!;
    const res = next.reservation;
    const uas: PendingUa[] = [];
    let removed: Registration[];

    const removeByKey = (k: bigint, keepMe: boolean): Registration[] => {
      const gone = next.registrations.filter((r) => r.key === k && !(keepMe && r === me));
      next.registrations = next.registrations.filter((r) => !gone.includes(r));
      return gone;
    };

    if (res === null || (res.holder === null && saKey !== 0n) || (res.holder !== null && saKey !== res.holder.key)) {
      // No reservation is preempted: remove the registrations with SERVICE ACTION RESERVATION KEY.
      if (saKey === 0n) return invalidFieldInParameterList(8);
      removed = removeByKey(saKey, false);
      if (removed.length === 0) return reservationConflict();
      if (res !== null && res.holder !== null && removed.includes(res.holder)) next.reservation = null;
      if (res !== null && res.holder === null && next.registrations.length === 0) next.reservation = null;
    } else if (res.holder === null) {
      // All-registrants reservation with key 0: everyone else is removed, the issuer reserves.
      removed = next.registrations.filter((r) => r !== me);
      next.registrations = [me];
      next.reservation = { type, holder: isAllRegistrants(type) ? null : me };
    } else {
      // Preempt the holder: its key's registrations go (the issuer's own stays), the issuer reserves.
      removed = removeByKey(saKey, true);
      next.reservation = { type, holder: isAllRegistrants(type) ? null : me };
      if (res.type !== type) {
        // Type changed: the registrants that remain (other than the issuer) are told the old one was released.
        uas.push({ code: Asc.RESERVATIONS_RELEASED, regs: next.registrations.filter((r) => r !== me) });
      }
    }
    uas.push({ code: Asc.REGISTRATIONS_PREEMPTED, regs: removed.filter((r) => r !== me) });
    next.generation = (next.generation + 1) >>> 0;
    const removedNexuses = this.nexusesOf(removed.filter((r) => r !== me), req.nexus);
    const r = await this.commit(next, uas, req.nexus);
    if (abort && r.status === 0 && removedNexuses.length !== 0 && dev.abortTasksOf !== undefined) {
      await dev.abortTasksOf(this.host.lun, removedNexuses, req.nexus);
    }
    return r;
  }

  /** REGISTER AND MOVE, SPC-4 §5.13.8. */
  private async registerAndMove(nexus: ItNexus, p: Buffer, scope: number, type: number): Promise<ScsiResponse> {
    const key = p.readBigUInt64BE(0);
    const saKey = p.readBigUInt64BE(8);
    const unreg = (p[17]! & 0x02) !== 0;
    const aptpl = (p[17]! & 0x01) !== 0;
    const rtpi = p.readUInt16BE(18);
    const tidLen = p.readUInt32BE(20);
    const cur = this.state;
    const reg = this.registrationOf(cur, nexus);
    if (reg === undefined || key !== reg.key) return reservationConflict();
    const res = cur.reservation;
    // Only the holder of a reservation other than all-registrants can move it.
    if (res === null || res.holder === null || !this.isHolder(cur, reg)) return reservationConflict();
    if (saKey === 0n) return invalidFieldInParameterList(8);
    if (24 + tidLen > p.length) return parameterListLengthError();
    const tid = parseIscsiTransportId(p.subarray(24, 24 + tidLen));
    if ('error' in tid) return invalidFieldInParameterList(24);
    // The destination is reached through the same target port as the issuer (this target has one
    // per portal group; the RELATIVE TARGET PORT IDENTIFIER must name it).
    if (rtpi !== nexus.targetPort.relativeId) return invalidFieldInParameterList(18);
    if (tid.initiatorPort === nexus.initiatorPort) return invalidFieldInParameterList(24);
    void scope;
    void type;

    const next = cloneState(cur);
    const me = next.registrations[cur.registrations.indexOf(reg)]!;
    let dest = this.registrationOf(next, { initiatorPort: tid.initiatorPort, targetPort: nexus.targetPort });
    if (dest === undefined) {
      dest = { initiatorPort: tid.initiatorPort, targetPort: registeredPort(nexus), key: saKey };
      next.registrations.push(dest);
    } else {
      dest.key = saKey;
    }
    next.reservation = { type: res.type, holder: dest };
    if (unreg) next.registrations = next.registrations.filter((r) => r !== me);
    next.aptpl = aptpl;
    next.generation = (next.generation + 1) >>> 0;
    return this.commit(next, []);
  }

  /** Every I_T nexus known to the LU that `regs` cover, except `except`. */
  private nexusesOf(regs: readonly Registration[], except?: ItNexus): ItNexus[] {
    if (regs.length === 0) return [];
    const out: ItNexus[] = [];
    for (const nexus of this.host.unitAttentions.knownNexuses()) {
      if (nexus.id !== except?.id && regs.some((r) => covers(r, nexus))) out.push(nexus);
    }
    return out;
  }

  /**
   * Make `next` the state: persist it first when APTPL asks (or remove the persisted copy when
   * APTPL was turned off); only then swap it in and establish the unit attentions.
   */
  private async commit(next: PrState, uas: PendingUa[], issuer?: ItNexus): Promise<ScsiResponse> {
    const write = this.host.backend.writeSidecar;
    if (next.aptpl || this.state.aptpl) {
      if (write === undefined) {
        if (next.aptpl) return invalidFieldInParameterList(20, 0); // cannot persist: PTPL not available
      } else {
        try {
          await write.call(this.host.backend, PR_SIDECAR, next.aptpl ? serialize(next) : undefined);
        } catch (err) {
          return insufficientResourcesOrFailure(err);
        }
      }
    }
    this.state = next;
    for (const ua of uas) {
      for (const nexus of this.nexusesOf(ua.regs, issuer)) this.host.unitAttentions.establishFor(nexus, ua.code);
    }
    return good();
  }
}
