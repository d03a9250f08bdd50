/**
 * Slows down CHAP guessing without ever refusing a correct login.
 *
 * Each wrong CHAP response counts against the pair (initiator name, source address). From the
 * `after`-th failure on, the refusal of a wrong response is sent only after
 * initial·2^(failures−after) seconds, capped at `max` and never more than MAX_DELAY_SECONDS, so a
 * guesser that waits for answers gets a few per minute. A correct response is answered at once,
 * whatever the count: on a Kubernetes node every pod's volume logs in from the node's address,
 * and one volume with a wrong secret must not lock the others out. Refusals that are not CHAP
 * responses (initiator not in the ACL, unknown target, missing CHAP) are not counted. While a
 * refusal is held, its connection stays in the login phase, so the per-address cap on pending
 * logins (iscsi.maxPendingLoginsPerAddress) bounds the guesses in flight.
 *
 * Failures are not reset by a successful login; a pair is forgotten after a quiet period of
 * FORGET_AFTER_MAX_MULTIPLE × max seconds (at least 10 minutes) without failures. At most
 * MAX_TRACKED pairs are remembered (the least recently failing are dropped first).
 */
export interface BackoffSettings {
  /** Failures before refusals are delayed; 0 disables the back-off. */
  after: number;
  /** First delay, seconds. */
  initial: number;
  /** Longest delay, seconds (MAX_DELAY_SECONDS at most). */
  max: number;
}

export const MAX_TRACKED = 10_000;
/** However the settings read, a refusal is held at most this long (well inside the login timeout). */
export const MAX_DELAY_SECONDS = 5;
const FORGET_AFTER_MAX_MULTIPLE = 10;
const MIN_FORGET_MS = 10 * 60_000;

interface Failures {
  count: number;
  last: number;
}

export class AuthBackoff {
  private readonly byInitiator = new Map<string, Failures>();

  constructor(
    public settings: BackoffSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Failed CHAP responses remembered for the initiator name from the address. */
  failures(initiator: string, address: string): number {
    return this.lookup(key(initiator, address))?.count ?? 0;
  }

  /** Count one failed CHAP response; returns how long (ms) to hold its refusal (0 = answer now). */
  recordFailure(initiator: string, address: string): number {
    if (this.settings.after <= 0) return 0;
    const k = key(initiator, address);
    const r = this.lookup(k) ?? { count: 0, last: 0 };
    r.count++;
    r.last = this.now();
    // Re-insert so that Map order is least-recently-failed first.
    this.byInitiator.delete(k);
    this.byInitiator.set(k, r);
    if (this.byInitiator.size > MAX_TRACKED) this.prune();
    return this.delayMs(r.count);
  }

  /** Number of (initiator, address) pairs tracked (tests, metrics). */
  get size(): number {
    return this.byInitiator.size;
  }

  private delayMs(failures: number): number {
    const { after, initial, max } = this.settings;
    if (after <= 0 || failures < after) return 0;
    const exp = Math.min(failures - after, 30);
    return Math.round(Math.min(max, MAX_DELAY_SECONDS, initial * 2 ** exp) * 1000);
  }

  private forgetMs(): number {
    return Math.max(MIN_FORGET_MS, this.settings.max * 1000 * FORGET_AFTER_MAX_MULTIPLE);
  }

  private lookup(k: string): Failures | undefined {
    const r = this.byInitiator.get(k);
    if (r !== undefined && this.now() - r.last > this.forgetMs()) {
      this.byInitiator.delete(k);
      return undefined;
    }
    return r;
  }

  private prune(): void {
    const now = this.now();
    const forget = this.forgetMs();
    for (const [k, r] of this.byInitiator) {
      if (now - r.last > forget) this.byInitiator.delete(k);
    }
    // Still too many: drop the least recently failing.
    for (const k of this.byInitiator.keys()) {
      if (this.byInitiator.size <= MAX_TRACKED) break;
      this.byInitiator.delete(k);
    }
  }
}

/** Names compare case-insensitively (RFC 7143 §4.2.7.1), addresses as normalize() gives them. */
function key(initiator: string, address: string): string {
  return `${normalize(address)} ${initiator.toLowerCase()}`;
}

/** IPv4-mapped IPv6 addresses count as their IPv4 address. */
export function normalize(address: string): string {
  const a = address.toLowerCase();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
