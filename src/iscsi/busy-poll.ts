/**
 * Adaptive busy-polling of the event loop between PDUs (what Linux's `net.core.busy_poll` does
 * for sockets and QEMU's `poll-max-ns` for its event loop).
 *
 * At queue depth 1 the event loop goes to sleep after every response and is woken for the next
 * command (and, for a write, again for the thread pool's completion). Waking a sleeping CPU
 * costs tens of microseconds on a virtual machine, more than the command itself: 37 us on
 * average per wake-up measured on the 2 vCPU test machine (docs/benchmarks.md). While polling,
 * libuv's poll phase does not block (a pending setImmediate makes its timeout 0), so the next
 * PDU or completion is picked up as it arrives.
 *
 * The window adapts, so an idle or lightly loaded server does not spin: after a gap longer than
 * the limit (the initiator is not at a steady queue depth) it halves, down to nothing; after a
 * gap the window missed but the limit would have caught, or one it caught, it doubles, up to
 * the limit. With no activity, polling stops when the window ends.
 */

/** Below this the window is not worth a loop turn: polling stops until gaps shorten again. */
const MIN_WINDOW_US = 8;

export interface BusyPollClock {
  /** Milliseconds, monotonic (performance.now()). */
  now(): number;
  /** Run `fn` after the next poll phase (setImmediate). */
  soon(fn: () => void): void;
}

const REAL_CLOCK: BusyPollClock = { now: () => performance.now(), soon: (fn) => setImmediate(fn) };

export class BusyPoll {
  /** Current window in microseconds, at most the limit; it opens with the first steady gaps. */
  private windowUs = 0;
  private lastActivity = -Infinity;
  private polling = false;
  private turnCount = 0;

  /** `limitUs()` is read on each activity, so a reloaded setting applies at once; 0 = off. */
  constructor(private readonly limitUs: () => number, private readonly clock: BusyPollClock = REAL_CLOCK) {}

  /**
   * A PDU arrived (`received`) or was sent: keep the event loop awake for the window that
   * follows. Only arrivals adapt the window: a response always follows its command closely, so
   * counting sends would keep the window open under light load.
   */
  activity(received: boolean): void {
    const limit = this.limitUs();
    if (limit <= 0) return;
    const now = this.clock.now();
    if (received) {
      if (this.polling) this.windowUs = Math.min(limit, this.windowUs * 2); // caught: the traffic is steady
      else this.adapt((now - this.lastActivity) * 1000, limit);
    }
    this.lastActivity = now;
    if (!this.polling && this.windowUs > 0) {
      this.polling = true;
      this.clock.soon(this.poll);
    }
  }

  /** Loop turns spent polling since start. */
  get turns(): number {
    return this.turnCount;
  }

  /** The current window, microseconds (0: not polling after activity). */
  get window(): number {
    return this.windowUs;
  }

  private adapt(gapUs: number, limit: number): void {
    if (gapUs <= limit) {
      // The window ended just before this activity: a longer one would have caught it.
      this.windowUs = Math.min(limit, Math.max(this.windowUs * 2, MIN_WINDOW_US * 2));
    } else {
      const halved = Math.min(limit, this.windowUs) / 2;
      this.windowUs = halved < MIN_WINDOW_US ? 0 : halved;
    }
  }

  private readonly poll = (): void => {
    this.turnCount++;
    if ((this.clock.now() - this.lastActivity) * 1000 < this.windowUs) this.clock.soon(this.poll);
    else this.polling = false;
  };
}
