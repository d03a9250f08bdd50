import type { ItNexus } from './nexus.js';
import type { TaskHandle } from './types.js';

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
export class Task implements TaskHandle {
  state: 'pending' | 'running' | 'done' = 'pending';
  /**
   * A backend call of this task was given up on while its system call still held the task's
   * buffers (data-in, write data): the transport drops them instead of reusing them.
   */
  buffersPinned = false;
  /** Ended by task management or nexus loss: its outcome is not reported as the command's. */
  aborted = false;
  /** With `aborted`: answer TASK ABORTED (TAS) instead of nothing. */
  reportAborted = false;
  /** Settles when a running task has left the device server. */
  execution: Promise<unknown> | null = null;
  /** Handlers waiting inside the device server (range locks, backend calls) that stop when the task is aborted. */
  private abortListeners: Array<() => void> | null = null;

  constructor(
    readonly nexus: ItNexus,
    readonly lun: number,
    readonly cdb: Buffer,
    readonly onAbort: AbortListener,
  ) {}

  whenAborted(listener: () => void): () => void {
    (this.abortListeners ??= []).push(listener);
    return () => {
      const list = this.abortListeners;
      const i = list === null ? -1 : list.indexOf(listener);
      if (i >= 0) list!.splice(i, 1);
    };
  }

  pinBuffers(): void {
    this.buffersPinned = true;
  }

  /** Marks the task aborted and tells the handlers waiting inside the device server. */
  markAborted(reportStatus: boolean): void {
    this.aborted = true;
    this.reportAborted = reportStatus;
    const listeners = this.abortListeners;
    this.abortListeners = null;
    if (listeners !== null) for (const l of listeners) l();
  }
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
      task.markAborted(issuer !== null && issuer.id !== task.nexus.id);
      if (task.state === 'pending') this.remove(task);
      else if (task.execution !== null) running.push(task.execution);
      task.onAbort(task.reportAborted);
    }
    await Promise.allSettled(running);
  }
}
