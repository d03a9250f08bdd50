/**
 * How I/O statistics count a command: what it does to logical block data, and why it failed.
 * Read-only views of the command table and of a response, for whoever keeps the statistics.
 */
import { Op } from './cdb.js';
import { ruleFor } from './command-table.js';
import { COMMANDS } from './commands.js';
import { SenseKey } from './sense.js';
import { ScsiStatus, type ScsiResponse } from './types.js';

/** `read`: READ(6/10/12/16); `write`: a command that changes logical block data (WRITE, WRITE SAME, UNMAP, COMPARE AND WRITE, …); `other`: the rest. */
export type IoKind = 'read' | 'write' | 'other';

const READS: ReadonlySet<number> = new Set([Op.READ_6, Op.READ_10, Op.READ_12, Op.READ_16]);

export function ioKind(cdb: Buffer): IoKind {
  const op = cdb[0]!;
  if (READS.has(op)) return 'read';
  const d = COMMANDS.lookup(cdb);
  return typeof d === 'object' && ruleFor(d.modifies, cdb) === 'medium' ? 'write' : 'other';
}

const SENSE_KEY_NAMES = new Map<number, string>(Object.entries(SenseKey).map(([name, key]) => [key, name.toLowerCase().replaceAll('_', '-')]));

/**
 * Why a command did not succeed, as a short name: the sense key of a CHECK CONDITION
 * ("unit-attention", "medium-error", "not-ready", …) or the status ("reservation-conflict",
 * "busy", "task-set-full", "task-aborted"); undefined for GOOD and CONDITION MET.
 */
export function failureReason(res: ScsiResponse): string | undefined {
  switch (res.status) {
    case ScsiStatus.Good:
    case ScsiStatus.ConditionMet:
      return undefined;
    case ScsiStatus.CheckCondition: {
      // Fixed-format sense data (SPC-4 §4.5.3): the sense key is byte 2, bits 3-0.
      const key = res.sense !== undefined && res.sense.length > 2 ? res.sense[2]! & 0x0f : undefined;
      return (key !== undefined ? SENSE_KEY_NAMES.get(key) : undefined) ?? 'check-condition';
    }
    case ScsiStatus.ReservationConflict:
      return 'reservation-conflict';
    case ScsiStatus.Busy:
      return 'busy';
    case ScsiStatus.TaskSetFull:
      return 'task-set-full';
    case ScsiStatus.TaskAborted:
      return 'task-aborted';
    default:
      return `status-0x${res.status.toString(16).padStart(2, '0')}`;
  }
}
