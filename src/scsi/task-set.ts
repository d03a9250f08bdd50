import type { ItNexus } from './nexus.js';

/**
 * Called when task management (or I_T nexus loss) aborts a task. `reportStatus`: the transport
 * answers the command with TASK ABORTED status once it has left the SCSI layer (SAM-5 §5.3,
 * TAS = 1 for tasks of another I_T nexus); otherwise the command gets no response at all.
 */
export type AbortListener = (reportStatus: boolean) => void;

/**
 * One command in the task set (SAM-5 §8, the task set of a logical unit). The transport creates
 * it when the command arrives, possibly long before it runs (write data still arriving):
 * `pending` until the transport hands it to the device server, `running` inside it, `done` once
 * it has completed or been aborted.
 */
export class Task {
  state: 'pending' | 'running' | 'done' = 'pending';
  /** Ended by task management or nexus loss: its outcome is not reported as the command's. */
  aborted = false;
  /** With `aborted`: answer TASK ABORTED (TAS) instead of nothing. */
  reportAborted = false;
  /** Settles when a running task has left the device server. */
  execution: Promise<unknown> | null = null;

  constructor(
    readonly nexus: ItNexus,
    readonly lun: number,
    readonly cdb: Buffer,
    readonly onAbort: AbortListener,
  ) {}
}

/**
 * The tasks of a SCSI target device, across its logical units and I_T nexuses. The device
 * server owns it (as tgt's target core owns its nexus list and task set): task management
 * functions select tasks here, whatever transport or session they came through.
 */
export class TaskSet {
  private readonly tasks = new Set<Task>();

  add(task: Task): void {
    this.tasks.add(task);
  }

  /** A task that completed (or ended without running) leaves the task set. */
  remove(task: Task): void {
    task.state = 'done';
    this.tasks.delete(task);
  }

  select(match: (t: Task) => boolean): Task[] {
    const out: Task[] = [];
    for (const t of this.tasks) if (match(t)) out.push(t);
    return out;
  }

  get size(): number {
    return this.tasks.size;
  }

  /**
   * Abort `tasks` on behalf of `issuer` (null: no I_T nexus asked, e.g. nexus loss). Pending tasks
   * end now; running ones are told and waited for. Tasks of another I_T nexus than the issuer's
   * report TASK ABORTED (SAM-5 §7.1 with TAS = 1 in the Control mode page, SPC-4 §7.5.8).
   * Resolves once none of them is inside the device server any more, so an aborted write can no
   * longer reach the medium afterwards.
   */
  async abort(tasks: readonly Task[], issuer: ItNexus | null): Promise<void> {
    const running: Promise<unknown>[] = [];
    for (const task of tasks) {
      if (task.state === 'done' || task.aborted) {
        if (task.execution !== null && task.state === 'running') running.push(task.execution);
        continue;
      }
      task.aborted = true;
      task.reportAborted = issuer !== null && issuer.id !== task.nexus.id;
      if (task.state === 'pending') this.remove(task);
      else if (task.execution !== null) running.push(task.execution);
      task.onAbort(task.reportAborted);
    }
    await Promise.allSettled(running);
  }
}
