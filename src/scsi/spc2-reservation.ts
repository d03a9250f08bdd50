/**
 * SPC-2 RESERVE(6)/(10) and RELEASE(6)/(10) (SPC-2 §7.21-§7.24): a logical unit reservation held
 * by one I_T nexus, with the interaction SPC-4 §5.13.3 defines for CRH = 1 when persistent
 * reservation registrations exist.
 */
import type { ItNexus } from './nexus.js';
import { hasFullAccess, registrationOf, type PrState } from './pr-state.js';
import { good, reservationConflict } from './sense.js';
import type { ScsiResponse } from './types.js';

export class Spc2Reservation {
  /** Id of the I_T nexus holding the reservation, if any. */
  private holderId: string | undefined;

  get holder(): string | undefined {
    return this.holderId;
  }

  /**
   * RESERVE: SPC-4 §5.13.3 (CRH = 1): from a persistent reservation holder (or a registrant under
   * a registrants-only / all-registrants type) GOOD without effect; else RESERVATION CONFLICT
   * while any registration exists.
   */
  reserve(nexus: ItNexus, pr: PrState): ScsiResponse {
    if (pr.registrations.length !== 0) return this.underRegistrations(nexus, pr);
    if (this.holderId !== undefined && this.holderId !== nexus.id) return reservationConflict();
    this.holderId = nexus.id;
    return good();
  }

  /** RELEASE: releases the holder's reservation; from anyone else GOOD without effect. */
  release(nexus: ItNexus, pr: PrState): ScsiResponse {
    if (pr.registrations.length !== 0) return this.underRegistrations(nexus, pr);
    if (this.holderId === nexus.id) this.holderId = undefined;
    return good();
  }

  /** LOGICAL UNIT RESET / hard reset (SPC-2 §5.5.1) ends the reservation. */
  reset(): void {
    this.holderId = undefined;
  }

  /** I_T nexus loss ends the nexus' reservation. */
  nexusLost(nexus: ItNexus): void {
    if (this.holderId === nexus.id) this.holderId = undefined;
  }

  private underRegistrations(nexus: ItNexus, pr: PrState): ScsiResponse {
    return hasFullAccess(pr, registrationOf(pr, nexus)) ? good() : reservationConflict();
  }
}
