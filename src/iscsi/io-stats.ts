import type { SessionType } from './session.js';
import type { IoKind } from '../scsi/io-kind.js';

/**
 * Upper bounds (seconds) of the command latency histogram: 100 µs (a read from the page cache)
 * to 10 s (a gluster brick timing out). A command's latency runs from its SCSI Command PDU to
 * its status going out, so a write includes the time its data took to arrive.
 */
export const LATENCY_BOUNDS_SECONDS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Commands of one kind on one LUN since the server started. Plain numbers: recording one costs a few additions. */
export class IoCounters {
  commands = 0;
  /** Data the commands carried: read data sent, write data received. */
  bytes = 0;
  /** Sum of the latencies, in seconds. */
  seconds = 0;
  /** Commands per latency bucket (not cumulative): [i] took at most LATENCY_BOUNDS_SECONDS[i] and more than the bound before; the last, more than every bound. */
  readonly latency: number[] = new Array<number>(LATENCY_BOUNDS_SECONDS.length + 1).fill(0);
  /** Commands that did not succeed, by reason (src/scsi/io-kind.ts failureReason). */
  readonly failures = new Map<string, number>();

  record(bytes: number, seconds: number, failure: string | undefined): void {
    this.commands++;
    this.bytes += bytes;
    this.seconds += seconds;
    let i = 0;
    while (i < LATENCY_BOUNDS_SECONDS.length && seconds > LATENCY_BOUNDS_SECONDS[i]!) i++;
    this.latency[i]!++;
    if (failure !== undefined) this.failures.set(failure, (this.failures.get(failure) ?? 0) + 1);
  }

  get failed(): number {
    let n = 0;
    for (const v of this.failures.values()) n += v;
    return n;
  }
}

/** Commands on one LUN, by kind. */
export class LunIoStats {
  readonly read = new IoCounters();
  readonly write = new IoCounters();
  readonly other = new IoCounters();

  of(kind: IoKind): IoCounters {
    return this[kind];
  }
}

/** Logins that established a session, by session type, and logins refused, by reason. */
export class LoginCounters {
  readonly succeeded = new Map<SessionType, number>();
  /** Reasons: the login status ("authorization-failure", "not-found", …), "login-timeout", "too-many-logins", "too-many-logins-from-address". */
  readonly refused = new Map<string, number>();

  loggedIn(type: SessionType): void {
    this.succeeded.set(type, (this.succeeded.get(type) ?? 0) + 1);
  }

  refusedFor(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }
}
