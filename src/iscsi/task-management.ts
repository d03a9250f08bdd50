import type { Pdu } from '../pdu/pdu.js';
import { tmfResponseHeader } from '../pdu/target-pdus.js';
import { decodeLun } from '../scsi/lun-address.js';
import type { Connection } from './connection.js';
import type { ScsiTask } from './scsi-task.js';
import { TaskManagementFunction as TmfFunction } from '../scsi/types.js';
import type { ServerContext } from './server-context.js';
import { snDiff } from './serial.js';

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

/** iSCSI's function 8 (RFC 7143 §11.5.1); 1–7 are SAM-5's, numbered alike. */
const TASK_REASSIGN = 8;

/**
 * Task management (RFC 7143 §11.5, SAM-5 §7). The response is sent only after every affected
 * task has left the SCSI layer, so an aborted write can no longer reach the medium afterwards.
 * Tasks of other I_T nexuses end with TASK ABORTED status (the control mode page reports TAS=1).
 */
export async function handleTaskManagement(conn: Connection, ctx: ServerContext, pdu: Pdu): Promise<void> {
  const session = conn.session!;
  const respond = (code: TmfResponse): void => conn.send(tmfResponseHeader(pdu.itt, code), undefined, true);
  const target = session.target;
  if (target === null) {
    respond(TmfResponse.AuthorizationFailed);
    return;
  }
  const fn: number = pdu.tmfFunction;
  const lun = decodeLun(pdu.bhs, 8);
  const log = conn.log;
  switch (fn) {
    case TmfFunction.AbortTask: {
      const task = session.tasks.get(pdu.referencedTaskTag);
      if (task === undefined || task.lun !== lun) {
        // §11.5.1 "ABORT TASK": a task not yet received (RefCmdSN in the window) counts as aborted.
        const notYetReceived = snDiff(pdu.refCmdSN, session.expCmdSN) >= 0 && snDiff(pdu.refCmdSN, session.maxCmdSN) <= 0;
        respond(notYetReceived ? TmfResponse.Complete : TmfResponse.TaskDoesNotExist);
        return;
      }
      await conn.commands.abort([task], false);
      respond(TmfResponse.Complete);
      return;
    }
    case TmfFunction.AbortTaskSet:
    case TmfFunction.ClearTaskSet: {
      if (!target.device.hasLun(lun)) {
        respond(TmfResponse.LunDoesNotExist);
        return;
      }
      const own = [...session.tasks.values()].filter((t) => t.lun === lun);
      const aborts = [conn.commands.abort(own, false)];
      if (fn === TmfFunction.ClearTaskSet) {
        // SAM-5 CLEAR TASK SET acts on the tasks of every I_T nexus for the LU.
        aborts.push(...abortOthers(ctx, conn, (t) => t.lun === lun));
        target.device.clearTaskSet(lun, session.nexus);
      }
      await Promise.all(aborts);
      respond(TmfResponse.Complete);
      return;
    }
    case TmfFunction.LogicalUnitReset: {
      if (!target.device.hasLun(lun)) {
        respond(TmfResponse.LunDoesNotExist);
        return;
      }
      const own = [...session.tasks.values()].filter((t) => t.lun === lun);
      await Promise.all([conn.commands.abort(own, false), ...abortOthers(ctx, conn, (t) => t.lun === lun)]);
      target.device.resetLogicalUnit(lun);
      log.info({ ...conn.identity(), lun }, 'logical unit reset');
      respond(TmfResponse.Complete);
      return;
    }
    case TmfFunction.TargetWarmReset:
    case TmfFunction.TargetColdReset: {
      const own = [...session.tasks.values()];
      await Promise.all([conn.commands.abort(own, false), ...abortOthers(ctx, conn, () => true)]);
      const cold = fn === TmfFunction.TargetColdReset;
      target.device.resetTarget(cold);
      log.info({ ...conn.identity(), cold }, 'target reset');
      respond(TmfResponse.Complete);
      if (cold) {
        // §11.5.1: after a cold reset the target drops all connections of all its sessions.
        for (const s of ctx.sessionsOf(target)) ctx.connectionOf(s)?.close('target cold reset');
      }
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
}

function abortOthers(ctx: ServerContext, conn: Connection, match: (t: ScsiTask) => boolean): Promise<void>[] {
  const session = conn.session!;
  const out: Promise<void>[] = [];
  for (const other of ctx.sessionsOf(session.target!)) {
    if (other === session) continue;
    const otherConn = ctx.connectionOf(other);
    if (otherConn === undefined) continue;
    out.push(otherConn.commands.abort([...other.tasks.values()].filter(match), true));
  }
  return out;
}
