/**
 * PERSISTENT RESERVE OUT (SPC-4 §6.16): decides, from the current persistent reservation state
 * alone, either the answer (nothing changes) or the next state with the unit attentions it
 * establishes. Committing the plan (compare-and-swap, retry on a newer state) is the caller's
 * part (reservations.ts), so a plan can be recomputed against whatever state another server
 * committed in between.
 */
import type { ItNexus } from './nexus.js';
import {
  MAX_REGISTRATIONS,
  VALID_PR_TYPES,
  clonePrState,
  isAllRegistrants,
  isHolder,
  isRegistrantsType,
  nextGeneration,
  registrationFor,
  registrationOf,
  type PrState,
  type Registration,
} from './pr-state.js';
import {
  Asc,
  SenseKey,
  good,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  reservationConflict,
  senseError,
} from './sense.js';
import { encodeIscsiTransportId, parseIscsiTransportId } from './transport-id.js';
import type { ScsiRequest, ScsiResponse } from './types.js';

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

/** A UNIT ATTENTION condition for the nexuses `regs` cover, established once the change is committed. */
export interface PendingUa {
  readonly code: number;
  readonly regs: readonly Registration[];
}

export interface ProutChange {
  readonly next: PrState;
  readonly uas: readonly PendingUa[];
  /** PREEMPT AND ABORT: the removed registrations whose nexuses' tasks are aborted. */
  readonly abort: readonly Registration[];
}

/** Either the answer, with nothing to commit, or a change to commit (GOOD once committed). */
export type ProutPlan = { readonly response: ScsiResponse } | ProutChange;

const answer = (response: ScsiResponse): ProutPlan => ({ response });
const change = (next: PrState, uas: PendingUa[] = [], abort: Registration[] = []): ProutPlan => ({ next, uas, abort });

/**
 * Plan the PERSISTENT RESERVE OUT `req` against `cur`. `canPersist`: whether APTPL = 1 can be
 * honoured (PTPL_C); without it APTPL = 1 is an invalid field.
 */
export function planPersistentReserveOut(req: ScsiRequest, cur: PrState, canPersist: boolean): ProutPlan {
  const plan = planChange(req, cur);
  if ('response' in plan) return plan;
  const move = (req.cdb[1]! & 0x1f) === ProutSa.REGISTER_AND_MOVE;
  if (plan.next.aptpl && !canPersist) return answer(invalidFieldInParameterList(move ? 17 : 20, 0));
  // Bounded per-initiator state: SPC-4 §5.13.7 / §6.16.2 INSUFFICIENT REGISTRATION RESOURCES.
  if (plan.next.registrations.length > Math.max(MAX_REGISTRATIONS, cur.registrations.length)) {
    return answer(senseError(SenseKey.ILLEGAL_REQUEST, Asc.INSUFFICIENT_REGISTRATION_RESOURCES));
  }
  return plan;
}

function planChange(req: ScsiRequest, cur: PrState): ProutPlan {
  const c = req.cdb;
  const sa = c[1]! & 0x1f;
  const scope = c[2]! >> 4;
  const type = c[2]! & 0x0f;
  const listLen = c.readUInt32BE(5);
  if (sa > ProutSa.REGISTER_AND_MOVE) return answer(invalidFieldInCdb(1, 4));

  // Parameter list (SPC-4 §6.16.3): 24 bytes, longer only for REGISTER AND MOVE's TransportID.
  if (sa === ProutSa.REGISTER_AND_MOVE ? listLen < 24 : listLen !== 24) return answer(parameterListLengthError());
  const data = req.dataOut;
  if (data === undefined || data.length < listLen) return answer(senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_INFORMATION_UNIT));
  const p = data.subarray(0, listLen);
  if (sa === ProutSa.REGISTER_AND_MOVE) return registerAndMove(req.nexus, p, cur);

  const key = p.readBigUInt64BE(0);
  const saKey = p.readBigUInt64BE(8);
  const flags = p[20]!;
  if (flags & 0x08) return answer(invalidFieldInParameterList(20, 3)); // SPEC_I_PT: SIP_C = 0
  const allTgPt = (flags & 0x04) !== 0;
  const aptpl = (flags & 0x01) !== 0;

  const needsType = sa === ProutSa.RESERVE || sa === ProutSa.RELEASE || sa === ProutSa.PREEMPT || sa === ProutSa.PREEMPT_AND_ABORT;
  if (needsType) {
    if (scope !== 0) return answer(invalidFieldInCdb(2, 7));
    if (!VALID_PR_TYPES.has(type)) return answer(invalidFieldInCdb(2, 3));
  }

  const reg = registrationOf(cur, req.nexus);
  if (sa === ProutSa.REGISTER || sa === ProutSa.REGISTER_AND_IGNORE_EXISTING_KEY) {
    return register(req.nexus, cur, reg, key, saKey, { ignoreKey: sa === ProutSa.REGISTER_AND_IGNORE_EXISTING_KEY, allTgPt, aptpl });
  }
  // Every other service action needs the issuer's registration and key (SPC-4 §5.13.5).
  if (reg === undefined || key !== reg.key) return answer(reservationConflict());
  switch (sa) {
    case ProutSa.RESERVE:
      return reserve(cur, reg, type);
    case ProutSa.RELEASE:
      return release(cur, reg, type);
    case ProutSa.CLEAR: {
      // SPC-4 §5.13.11.6: everything goes; the others are told.
      const next = clonePrState(cur);
      next.registrations = [];
      next.reservation = null;
      next.generation = nextGeneration(cur);
      return change(next, [{ code: Asc.RESERVATIONS_PREEMPTED, regs: cur.registrations.filter((r) => r !== reg) }]);
    }
    default:
      return preempt(cur, reg, saKey, type, sa === ProutSa.PREEMPT_AND_ABORT);
  }
}

/** REGISTER / REGISTER AND IGNORE EXISTING KEY, SPC-4 §5.13.7. */
function register(
  nexus: ItNexus,
  cur: PrState,
  reg: Registration | undefined,
  key: bigint,
  saKey: bigint,
  o: { ignoreKey: boolean; allTgPt: boolean; aptpl: boolean },
): ProutPlan {
  const next = clonePrState(cur);
  const uas: PendingUa[] = [];
  if (reg === undefined) {
    if (!o.ignoreKey && key !== 0n) return answer(reservationConflict());
    if (saKey === 0n) return answer(good()); // unregistered nexus unregistering: nothing to do
    next.registrations.push(registrationFor(nexus, o.allTgPt, saKey));
  } else {
    if (!o.ignoreKey && key !== reg.key) return answer(reservationConflict());
    const nreg = next.registrations[cur.registrations.indexOf(reg)]!;
    if (saKey === 0n) unregister(next, nreg, uas);
    else nreg.key = saKey;
  }
  next.aptpl = o.aptpl;
  next.generation = nextGeneration(cur);
  return change(next, uas);
}

/** RESERVE, SPC-4 §5.13.9: the holder may repeat it with the same type; anything else conflicts. */
function reserve(cur: PrState, reg: Registration, type: number): ProutPlan {
  const res = cur.reservation;
  if (res !== null) return answer(isHolder(cur, reg) && res.type === type ? good() : reservationConflict());
  const next = clonePrState(cur);
  const nreg = next.registrations[cur.registrations.indexOf(reg)]!;
  next.reservation = { type, holder: isAllRegistrants(type) ? null : nreg };
  return change(next);
}

/** RELEASE, SPC-4 §5.13.11.2: from a non-holder GOOD without effect. */
function release(cur: PrState, reg: Registration, type: number): ProutPlan {
  const res = cur.reservation;
  if (res === null || !isHolder(cur, reg)) return answer(good());
  if (res.type !== type) return answer(senseError(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_RELEASE_OF_PERSISTENT_RESERVATION));
  const next = clonePrState(cur);
  next.reservation = null;
  // Releasing a registrants-only / all-registrants reservation tells every other registrant.
  const uas = isRegistrantsType(res.type) ? [{ code: Asc.RESERVATIONS_RELEASED, regs: [...next.registrations] }] : [];
  return change(next, uas);
}

/** Remove `reg` from `next`; a reservation it held is released (SPC-4 §5.13.11.3). */
function unregister(next: PrState, reg: Registration, uas: PendingUa[]): void {
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
function preempt(cur: PrState, reg: Registration, saKey: bigint, type: number, abort: boolean): ProutPlan {
  const next = clonePrState(cur);
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
    if (saKey === 0n) return answer(invalidFieldInParameterList(8));
    removed = removeByKey(saKey, false);
    if (removed.length === 0) return answer(reservationConflict());
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
  const others = removed.filter((r) => r !== me);
  uas.push({ code: Asc.REGISTRATIONS_PREEMPTED, regs: others });
  next.generation = nextGeneration(cur);
  return change(next, uas, abort ? others : []);
}

/** REGISTER AND MOVE, SPC-4 §5.13.8 (parameter list §6.16.4). */
function registerAndMove(nexus: ItNexus, p: Buffer, cur: PrState): ProutPlan {
  const key = p.readBigUInt64BE(0);
  const saKey = p.readBigUInt64BE(8);
  const unreg = (p[17]! & 0x02) !== 0;
  const aptpl = (p[17]! & 0x01) !== 0;
  const rtpi = p.readUInt16BE(18);
  const tidLen = p.readUInt32BE(20);
  const reg = registrationOf(cur, nexus);
  if (reg === undefined || key !== reg.key) return answer(reservationConflict());
  const res = cur.reservation;
  // Only the holder of a reservation other than all-registrants can move it.
  if (res === null || res.holder === null || !isHolder(cur, reg)) return answer(reservationConflict());
  if (saKey === 0n) return answer(invalidFieldInParameterList(8));
  if (24 + tidLen > p.length) return answer(parameterListLengthError());
  const tid = parseIscsiTransportId(p.subarray(24, 24 + tidLen));
  if ('error' in tid) return answer(invalidFieldInParameterList(24));
  // The destination is reached through the same target port as the issuer (this target has one
  // per portal group; the RELATIVE TARGET PORT IDENTIFIER must name it).
  if (rtpi !== nexus.targetPort.relativeId) return answer(invalidFieldInParameterList(18));
  if (tid.initiatorPort === nexus.initiatorPort) return answer(invalidFieldInParameterList(24));

  const next = clonePrState(cur);
  const me = next.registrations[cur.registrations.indexOf(reg)]!;
  let dest = registrationOf(next, { initiatorPort: tid.initiatorPort, targetPort: nexus.targetPort });
  if (dest === undefined) {
    // No nexus of the destination is at hand: its TransportID is encoded from the port name.
    const port = { name: nexus.targetPort.name, relativeId: nexus.targetPort.relativeId };
    dest = { initiatorPort: tid.initiatorPort, transportId: encodeIscsiTransportId(tid.initiatorPort), targetPort: port, key: saKey };
    next.registrations.push(dest);
  } else {
    dest.key = saKey;
  }
  next.reservation = { type: res.type, holder: dest };
  if (unreg) next.registrations = next.registrations.filter((r) => r !== me);
  next.aptpl = aptpl;
  next.generation = nextGeneration(cur);
  return change(next);
}
