import type { Logger } from 'pino';
import type { BufferPool } from '../pdu/buffer-pool.js';
import type { RejectReason } from '../pdu/opcodes.js';
import type { DataBudget } from './data-budget.js';
import type { Session } from './session.js';

/**
 * What the full feature phase handlers of one connection (data path, text, task management)
 * may use: its session and a way to send. They never see the connection itself.
 */
export interface SessionPort {
  readonly session: Session;
  readonly log: Logger;
  /** Reusable buffers for data segments and read data (shared by all connections). */
  readonly bufferPool: BufferPool;
  /** Command data held in memory across all connections. */
  readonly dataBudget: DataBudget;
  /** The connection is gone: nothing more will be sent. */
  readonly closed: boolean;
  /**
   * Send a target PDU; the connection stamps StatSN (advanced when `advanceStatSN`), ExpCmdSN
   * and MaxCmdSN. `onWritten` runs once the data has left (never on a closed connection).
   */
  send(header: Buffer, data?: Buffer, advanceStatSN?: boolean, onWritten?: () => void): void;
  /** Answer a PDU with Reject (RFC 7143 §11.17) and log why. */
  reject(reason: RejectReason, offending: Buffer, why: string): void;
  /** A fresh Target Transfer Tag. */
  allocateTtt(): number;
}
