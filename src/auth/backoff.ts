/**
 * Exponential back-off per source address after repeated authentication failures.
 *
 * Each authentication (0x0201) or authorization (0x0202) refusal counts against the address the
 * login came from. From the `after`-th failure on, the address is blocked for
 * initial·2^(failures−after) seconds (capped at `max`) counted from its last failure; a login
 * from a blocked address is refused before any credential is looked at (status 0x0301, "service
 * unavailable": initiators such as open-iscsi retry those later, so a node that got its secret
 * fixed recovers by itself). The block is checked again just before a CHAP response is verified,
 * so opening many connections in parallel does not buy more guesses.
 *
 * Failures are not reset by a successful login (an initiator with one valid credential must not
 * be able to launder guesses at another); an address is forgotten after a quiet period of
 * FORGET_AFTER_MAX_MULTIPLE × max seconds (at least 10 minutes) without failures. At most
 * MAX_TRACKED addresses are remembered (the least recently failing are dropped first).
 */
export interface BackoffSettings {
  /** Failures before the first block; 0 disables the back-off. */
  after: number;
  /** First block, seconds. */
  initial: number;
  /** Longest block, seconds. */
  max: number;
}

export const MAX_TRACKED = 10_000;
const FORGET_AFTER_MAX_MULTIPLE = 10;
const MIN_FORGET_MS = 10 * 60_000;

interface Record {
  failures: number;
  last: number;
}

export class AuthBackoff {
  private readonly byAddress = new Map<string, Record>();

  constructor(
    public settings: BackoffSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds the address stays blocked (0 = not blocked). */
  blockedMs(address: string): number {
    const r = this.lookup(address);
    if (r === undefined) return 0;
    const until = r.last + this.blockMs(r.failures);
    return Math.max(0, until - this.now());
  }

  /** Failures remembered for the address. */
  failures(address: string): number {
    return this.lookup(address)?.failures ?? 0;
  }

  /** Count one failure; returns the block (ms) it causes from now on (0 = none yet). */
  recordFailure(address: string): number {
    if (this.settings.after <= 0) return 0;
    const key = normalize(address);
    const r = this.lookup(address) ?? { failures: 0, last: 0 };
    r.failures++;
    r.last = this.now();
    // Re-insert so that Map order is least-recently-failed first.
    this.byAddress.delete(key);
    this.byAddress.set(key, r);
    if (this.byAddress.size > MAX_TRACKED) this.prune();
    return this.blockMs(r.failures);
  }

  /** Number of addresses tracked (tests, metrics). */
  get size(): number {
    return this.byAddress.size;
  }

  private blockMs(failures: number): number {
    const { after, initial, max } = this.settings;
    if (after <= 0 || failures < after) return 0;
    const exp = Math.min(failures - after, 30);
    return Math.min(max, initial * 2 ** exp) * 1000;
  }

  private forgetMs(): number {
    return Math.max(MIN_FORGET_MS, this.settings.max * 1000 * FORGET_AFTER_MAX_MULTIPLE);
  }

  private lookup(address: string): Record | undefined {
    const key = normalize(address);
    const r = this.byAddress.get(key);
    if (r !== undefined && this.now() - r.last > this.forgetMs()) {
      this.byAddress.delete(key);
      return undefined;
    }
    return r;
  }

  private prune(): void {
    const now = this.now();
    const forget = this.forgetMs();
    for (const [k, r] of this.byAddress) {
      if (now - r.last > forget) this.byAddress.delete(k);
    }
    // Still too many: drop the least recently failing.
    for (const k of this.byAddress.keys()) {
      if (this.byAddress.size <= MAX_TRACKED) break;
      this.byAddress.delete(k);
    }
  }
}

/** IPv4-mapped IPv6 addresses count as their IPv4 address. */
export function normalize(address: string): string {
  const a = address.toLowerCase();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
