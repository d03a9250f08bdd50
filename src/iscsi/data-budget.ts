/**
 * Server-wide bound on command data held in memory: write data not yet in the file (including
 * immediate data of commands parked behind a CmdSN gap), read data not yet taken by the socket.
 * Each session holds it through a `BudgetAccount` and gets a fair share (the limit divided among
 * the sessions): a session at its share, or holding data while the whole budget is used, stops
 * reading its socket and starting reads, so initiators are held back by TCP flow control and the
 * command window instead of growing our heap, and one session cannot take what others need.
 * Usage stays within the limit plus one command (a session holding nothing may start one while
 * the budget is not exhausted) plus what each connection reads in one socket read.
 */
export class DataBudget {
  private held = 0;
  /** Highest usage seen (for tests and diagnostics). */
  peak = 0;
  private readonly accounts = new Set<BudgetAccount>();
  /** Called when memory is given back or the shares change, until they return true. */
  private watchers: Array<() => boolean> = [];

  constructor(readonly limit: number) {}

  get exhausted(): boolean {
    return this.held >= this.limit;
  }

  get inUse(): number {
    return this.held;
  }

  /** What one session may hold: the limit divided among the sessions that have an account. */
  get share(): number {
    return this.limit / Math.max(1, this.accounts.size);
  }

  /** An account for one session's data; `close` it when the session's connection ends. */
  open(): BudgetAccount {
    const account = new BudgetAccount(this, (a) => this.close(a));
    this.accounts.add(account);
    return account;
  }

  /** Call `ready` whenever memory is given back or the shares change, until it returns true. */
  watch(ready: () => boolean): void {
    if (!ready()) this.watchers.push(ready);
  }

  /** @internal (BudgetAccount) */
  changed(bytes: number): void {
    this.held += bytes;
    if (this.held > this.peak) this.peak = this.held;
    if (bytes < 0 && this.watchers.length > 0) this.notify();
  }

  private close(account: BudgetAccount): void {
    if (this.accounts.delete(account) && this.watchers.length > 0) this.notify();
  }

  private notify(): void {
    const current = this.watchers;
    this.watchers = [];
    const still = current.filter((ready) => !ready());
    this.watchers.push(...still);
  }
}

/** One session's part of the DataBudget. */
export class BudgetAccount {
  /** Bytes this session holds. */
  held = 0;

  constructor(private readonly budget: DataBudget, private readonly onClose: (a: BudgetAccount) => void) {}

  take(bytes: number): void {
    this.held += bytes;
    this.budget.changed(bytes);
  }

  give(bytes: number): void {
    this.held -= bytes;
    this.budget.changed(-bytes);
  }

  /** Whether a read of `bytes` may start now: within the share, or the first while the budget has room. */
  mayStart(bytes: number): boolean {
    const b = this.budget;
    return !b.exhausted && (this.held === 0 || this.held + bytes <= b.share);
  }

  /** Whether this session's connection should stop reading its socket. */
  get overShare(): boolean {
    const b = this.budget;
    return this.held > 0 && (this.held >= b.share || b.exhausted);
  }

  /** Whether a connection stopped by `overShare` may read again (with hysteresis). */
  get mayResumeReceiving(): boolean {
    const b = this.budget;
    return this.held === 0 || (this.held < b.share / 2 && b.inUse < b.limit / 2);
  }

  close(): void {
    this.onClose(this);
  }
}
