import type { Pdu } from '../pdu/pdu.js';
import { tmfResponseHeader } from '../pdu/target-pdus.js';
import { decodeLun } from '../scsi/lun-address.js';
import type { TmfOutcome } from '../scsi/scsi-device.js';
import { TaskManagementFunction as TmfFunction } from '../scsi/types.js';
import { snDiff } from './serial.js';
import type { SessionPort } from './session-port.js';

/** TMF Response codes, RFC 7143 §11.6.1. */
const enum TmfResponse {
  Complete = 0,
  TaskDoesNotExist = 1,
  LunDoesNotExist = 2,
  TaskStillAllegiant = 3,
  ReassignmentNotSupported = 4,
  NotSupported = 5,
  AuthorizationFailed = 6,
  Rejected = 255,
}

const RESPONSE_OF: Record<TmfOutcome, TmfResponse> = {
  complete: TmfResponse.Complete,
  'no-such-lun': TmfResponse.LunDoesNotExist,
  'not-authorized': TmfResponse.AuthorizationFailed,
};

/** iSCSI's function 8 (RFC 7143 §11.5.1); 1–7 are SAM-5's, numbered alike. */
const TASK_REASSIGN = 8;

/**
 * Task Management Function Request (RFC 7143 §11.5): the device performs the function on its
 * task set (SAM-5 §7); this maps the Referenced Task Tag to a task and sends the response only
 * once the device reports the affected tasks gone, so an aborted write can no longer reach the
 * medium afterwards. `dropTargetConnections` ends every session of the target (cold reset).
 */
export async function handleTaskManagement(port: SessionPort, pdu: Pdu, dropTargetConnections: () => void): Promise<void> {
  const session = port.session;
  const respond = (code: TmfResponse): void => port.send(tmfResponseHeader(pdu.itt, code), undefined, true);
  const device = session.target?.device;
  if (device === undefined) {
    respond(TmfResponse.AuthorizationFailed);
    return;
  }
  const fn: number = pdu.tmfFunction;
  const lun = decodeLun(pdu.bhs, 8);
  const nexus = session.nexus;
  let outcome: TmfOutcome;
  switch (fn) {
    case TmfFunction.AbortTask: {
      const task = session.tasks.get(pdu.referencedTaskTag);
      if (task === undefined || task.lun !== lun) {
        // §11.5.1 "ABORT TASK": a task not yet received (RefCmdSN in the window) counts as aborted.
        const notYetReceived = snDiff(pdu.refCmdSN, session.expCmdSN) >= 0 && snDiff(pdu.refCmdSN, session.maxCmdSN) <= 0;
        respond(notYetReceived ? TmfResponse.Complete : TmfResponse.TaskDoesNotExist);
        return;
      }
      outcome = await device.abortTask(nexus, task.scsi);
      break;
    }
    case TmfFunction.AbortTaskSet:
      outcome = await device.abortTaskSet(nexus, lun);
      break;
    case TmfFunction.ClearTaskSet:
      outcome = await device.clearTaskSet(nexus, lun);
      break;
    case TmfFunction.LogicalUnitReset:
      outcome = await device.resetLogicalUnit(nexus, lun);
      if (outcome === 'complete') port.log.info({ lun }, 'logical unit reset');
      break;
    case TmfFunction.TargetWarmReset:
    case TmfFunction.TargetColdReset: {
      const cold = fn === TmfFunction.TargetColdReset;
      outcome = await device.resetTarget(nexus);
      if (outcome !== 'complete') break;
      port.log.info({ cold }, 'target reset');
      respond(TmfResponse.Complete);
      // §11.5.1: after a cold reset the target drops all connections of all its sessions.
      if (cold) dropTargetConnections();
      return;
    }
    case TASK_REASSIGN:
      respond(TmfResponse.ReassignmentNotSupported); // needs ErrorRecoveryLevel 2
      return;
    case TmfFunction.ClearAca:
    default:
      respond(TmfResponse.NotSupported);
      return;
  }
  if (outcome === 'not-authorized') port.log.warn({ function: fn, lun }, 'task management refused: read-only initiator');
  respond(RESPONSE_OF[outcome]);
}
