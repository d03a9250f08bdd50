/**
 * The hot-path question: does a command conflict with the reservations held? SPC-2 §5.5.1 for a
 * RESERVE(6)/(10) reservation, SPC-4 §5.13.1 (Tables 50 ff.) for a persistent reservation.
 */
import type { ReservationClass } from './command-table.js';
import type { ItNexus } from './nexus.js';
import { hasFullAccess, isWriteExclusive, registrationOf, type PrState } from './pr-state.js';

/**
 * Does a command of class `cls` from `nexus` conflict, given the persistent reservation state
 * `pr` and the I_T nexus id holding an SPC-2 reservation (if any)?
 */
export function reservationConflicts(cls: ReservationClass, nexus: ItNexus, pr: PrState, spc2Holder: string | undefined): boolean {
  if (cls === 'exempt' || cls === 'spc2') return false;
  if (spc2Holder !== undefined) {
    // SPC-2 §5.5.1: PERSISTENT RESERVE IN/OUT conflict under a RESERVE from any nexus.
    if (cls === 'pr') return true;
    return spc2Holder !== nexus.id;
  }
  if (cls === 'pr' || cls === 'allowed') return false;
  const res = pr.reservation;
  if (res === null) return false;
  // The holder, and under registrants-only / all-registrants types every registrant, has full access.
  if (hasFullAccess(pr, registrationOf(pr, nexus))) return false;
  return cls === 'write' || !isWriteExclusive(res.type);
}
