/**
 * The persistent reservation state of one logical unit (SPC-4 §5.13): registrations, the
 * reservation, the PRgeneration and APTPL, and the questions the reservation code asks of it.
 * A state is treated as immutable once it is committed; a change works on a copy (clonePrState).
 */
import type { ItNexus, TargetPort } from './nexus.js';

/** PERSISTENT RESERVATION TYPE codes (SPC-4 §6.16.3, Table 172). */
export const PrType = {
  WRITE_EXCLUSIVE: 1,
  EXCLUSIVE_ACCESS: 3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 8,
} as const;

export const VALID_PR_TYPES: ReadonlySet<number> = new Set<number>(Object.values(PrType));

/**
 * Most registrations one logical unit holds (bounded per-initiator state). A change that would
 * add one more is refused with INSUFFICIENT REGISTRATION RESOURCES (SPC-4 §5.13.7, §6.16.2).
 */
export const MAX_REGISTRATIONS = 256;

/** The target port a registration was made through: its name and RELATIVE TARGET PORT IDENTIFIER. */
export interface RegisteredPort {
  readonly name: string;
  readonly relativeId: number;
}

export interface Registration {
  readonly initiatorPort: string;
  /** TransportID of the initiator port (SPC-4 §7.6.4), reported by READ FULL STATUS. */
  readonly transportId: Buffer;
  /** null: registered through every target port (ALL_TG_PT = 1). */
  readonly targetPort: RegisteredPort | null;
  key: bigint;
}

export interface PersistentReservation {
  readonly type: number;
  /** The registration holding it; null for the all-registrants types (every registrant holds it). */
  readonly holder: Registration | null;
}

export interface PrState {
  /** PRgeneration (SPC-4 §6.15.2): counts registration changes, not reservation changes. */
  generation: number;
  /** APTPL of the last registration change (SPC-4 §5.13.2): whether the state survives power loss. */
  aptpl: boolean;
  registrations: Registration[];
  reservation: PersistentReservation | null;
}

export function emptyPrState(): PrState {
  return { generation: 0, aptpl: false, registrations: [], reservation: null };
}

/** A copy whose registrations can be changed; the reservation's holder points into the copy. */
export function clonePrState(s: PrState): PrState {
  const regs = s.registrations.map((r) => ({ ...r }));
  const res = s.reservation;
  return {
    generation: s.generation,
    aptpl: s.aptpl,
    registrations: regs,
    reservation: res === null ? null : { type: res.type, holder: res.holder === null ? null : regs[s.registrations.indexOf(res.holder)]! },
  };
}

/** The parts of an I_T nexus a registration is matched against. */
export type NexusPortNames = { readonly initiatorPort: string; readonly targetPort: Pick<TargetPort, 'name'> };

/** Does registration `r` cover the nexus (same initiator port; its target port, or ALL_TG_PT)? */
export function covers(r: Registration, n: NexusPortNames): boolean {
  return r.initiatorPort === n.initiatorPort && (r.targetPort === null || r.targetPort.name === n.targetPort.name);
}

export function registrationOf(s: PrState, nexus: NexusPortNames): Registration | undefined {
  return s.registrations.find((r) => covers(r, nexus));
}

/** A new registration of `nexus`' initiator port, through its target port or (ALL_TG_PT) every port. */
export function registrationFor(nexus: ItNexus, allTargetPorts: boolean, key: bigint): Registration {
  const targetPort = allTargetPorts ? null : { name: nexus.targetPort.name, relativeId: nexus.targetPort.relativeId };
  return { initiatorPort: nexus.initiatorPort, transportId: nexus.transportId, targetPort, key };
}

export function isAllRegistrants(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || type === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
}
export function isRegistrantsType(type: number): boolean {
  return type >= PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY;
}
export function isWriteExclusive(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE || type === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS;
}

/** Is `reg` a reservation holder (SPC-4 §5.13.10: every registrant, for the all-registrants types)? */
export function isHolder(s: PrState, reg: Registration | undefined): boolean {
  const res = s.reservation;
  if (res === null || reg === undefined) return false;
  return res.holder === null ? true : res.holder === reg;
}

/**
 * Full access under the reservation (SPC-4 §5.13.1, Table 50 ff.): its holder, and under the
 * registrants-only and all-registrants types every registrant.
 */
export function hasFullAccess(s: PrState, reg: Registration | undefined): boolean {
  const res = s.reservation;
  if (res === null || reg === undefined) return false;
  return isHolder(s, reg) || isRegistrantsType(res.type);
}

/** The next PRgeneration: a 32-bit counter that wraps (SPC-4 §6.15.2). */
export function nextGeneration(s: PrState): number {
  return (s.generation + 1) >>> 0;
}
