/**
 * Asymmetric logical unit access (SPC-4 §5.15): the access state of the target port group a
 * command arrives through, and which commands each state lets through (§5.15.2.2-§5.15.2.7).
 */
import { SenseKey, checkCondition } from './sense.js';
import type { ScsiResponse } from './types.js';

/** Primary target port asymmetric access states (SPC-4 §5.15.2.1). */
export type AluaState = 'active/optimized' | 'active/non-optimized' | 'standby' | 'unavailable' | 'transitioning';

/** The access states in which a command is processed (a CommandDescriptor's `alua` rule). */
export type AluaAccess = readonly AluaState[];

/** Processed only in the active states (§5.15.2.2, §5.15.2.3): every command not listed for another state. */
export const ACTIVE_ONLY: AluaAccess = ['active/optimized', 'active/non-optimized'];
/**
 * Also in standby (§5.15.2.4: INQUIRY, LOG SELECT/SENSE, MODE SELECT/SENSE, REPORT LUNS, RECEIVE
 * DIAGNOSTIC RESULTS, SEND DIAGNOSTIC, REPORT/SET TARGET PORT GROUPS, REQUEST SENSE, PERSISTENT
 * RESERVE IN/OUT; the device server may support others). READ CAPACITY(10)/(16) are added as LIO
 * and tcmu do: multipath tools size a standby path with them. TEST UNIT READY is answered too:
 * libiscsi (and so QEMU) tests every path with it right after login and gives up on NOT READY,
 * so a standby path could never even be connected.
 */
export const ACTIVE_OR_STANDBY: AluaAccess = [...ACTIVE_ONLY, 'standby'];
/** In every state (§5.15.2.4-§5.15.2.7 all list INQUIRY, REPORT LUNS, REQUEST SENSE). */
export const ANY_STATE: AluaAccess = [...ACTIVE_OR_STANDBY, 'unavailable', 'transitioning'];

/** NOT READY additional sense for a command a state refuses, as (ASC << 8) | ASCQ (SPC-4 §5.15.2). */
const REFUSAL: Record<Exclude<AluaState, 'active/optimized' | 'active/non-optimized'>, number> = {
  /** LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE. */
  standby: 0x040b,
  /** LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE. */
  unavailable: 0x040c,
  /** LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION. */
  transitioning: 0x040a,
};

/**
 * CHECK CONDITION / NOT READY with the state's ASC/ASCQ when `state` does not let the command
 * through. The active states process every command (SPC-4 §5.15.2.2, §5.15.2.3).
 */
export function aluaRefusal(state: AluaState, allowed: AluaAccess): ScsiResponse | undefined {
  if (state === 'active/optimized' || state === 'active/non-optimized' || allowed.includes(state)) return undefined;
  const code = REFUSAL[state];
  return checkCondition(SenseKey.NOT_READY, code >> 8, code & 0xff);
}
