import type { BufferPool } from '../pdu/buffer-pool.js';
import type { Pdu } from '../pdu/pdu.js';
import type { BudgetAccount } from './data-budget.js';

/**
 * Non-immediate PDUs that arrived ahead of a CmdSN gap, waiting for it to fill (RFC 7143
 * §4.2.2.1). Their data (immediate data of SCSI commands) counts against the session's budget
 * from the moment they are parked until they are dispatched or dropped.
 */
export class ParkedCommands {
  private readonly byCmdSN = new Map<number, Pdu>();
  /** Data bytes of the parked PDUs. */
  bytes = 0;

  constructor(private readonly account: BudgetAccount, private readonly pool: BufferPool) {}

  get size(): number {
    return this.byCmdSN.size;
  }

  /** Park `pdu`; a duplicate of a parked CmdSN is dropped (§4.2.2.1: silently ignored). */
  park(pdu: Pdu): void {
    if (this.byCmdSN.has(pdu.cmdSN)) {
      this.pool.release(pdu.data);
      return;
    }
    this.byCmdSN.set(pdu.cmdSN, pdu);
    this.bytes += pdu.data.length;
    this.account.take(pdu.data.length);
  }

  /** The PDU parked at `cmdSN`, if any, taken out (its data no longer counted here). */
  take(cmdSN: number): Pdu | undefined {
    const pdu = this.byCmdSN.get(cmdSN);
    if (pdu === undefined) return undefined;
    this.byCmdSN.delete(cmdSN);
    this.bytes -= pdu.data.length;
    this.account.give(pdu.data.length);
    return pdu;
  }

  /** The connection is gone: everything parked is dropped. */
  clear(): void {
    for (const pdu of this.byCmdSN.values()) this.pool.release(pdu.data);
    this.byCmdSN.clear();
    this.account.give(this.bytes);
    this.bytes = 0;
  }
}
