/**
 * Server-wide bound on command data held in memory (read buffers not yet sent, write data not
 * yet handed to the file). When it is exhausted, connections stop reading from their sockets, so
 * initiators are held back by TCP flow control and the command window instead of growing our
 * heap; reading resumes once usage falls below half the limit.
 */
export class DataBudget {
  private held = 0;
  /** Highest usage seen (for tests and diagnostics). */
  peak = 0;
  private waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  get exhausted(): boolean {
    return this.held >= this.limit;
  }

  get inUse(): number {
    return this.held;
  }

  take(bytes: number): void {
    this.held += bytes;
    if (this.held > this.peak) this.peak = this.held;
  }

  give(bytes: number): void {
    this.held -= bytes;
    if (this.waiting.length > 0 && this.held < this.limit / 2) {
      const ready = this.waiting;
      this.waiting = [];
      for (const resume of ready) resume();
    }
  }

  /** Call `resume` once usage has fallen below half the limit. */
  whenAvailable(resume: () => void): void {
    this.waiting.push(resume);
  }
}
