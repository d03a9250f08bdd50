import type { Logger } from 'pino';
import type { IscsiSettings } from '../config/types.js';
import type { Connection } from './connection.js';
import type { BufferPool } from '../pdu/buffer-pool.js';
import type { BusyPoll } from './busy-poll.js';
import type { DataBudget } from './data-budget.js';
import type { LoginAuth, LoginOutcome } from './login.js';
import type { Session } from './session.js';
import type { TargetNode } from './target-node.js';

/** What a connection needs from the server that owns it. */
export interface ServerContext {
  readonly log: Logger;
  readonly settings: IscsiSettings;
  /** Command data held in memory across all connections. */
  readonly dataBudget: DataBudget;
  /** Reusable buffers for received data segments and read data (shared by all connections). */
  readonly bufferPool: BufferPool;
  /** Keeps the event loop awake between PDUs at a steady queue depth (busy-poll.ts). */
  readonly busyPoll: BusyPoll;
  /** Authentication state (CHAP keyring, back-off) that logins consult. */
  readonly auth: LoginAuth;
  findTarget(iqn: string): TargetNode | undefined;
  /** Targets the initiator may log into, in configuration order (SendTargets filtering). */
  visibleTargets(initiatorName: string): TargetNode[];
  /** Create or reinstate the session for a completed login. */
  establish(conn: Connection, outcome: LoginOutcome): Promise<Session>;
  checkExistingSession(tsih: number, cid: number, initiatorName: string, isid: string, target: TargetNode | null): void;
  loginCompleted(conn: Connection, session: Session): void;
  /**
   * The connection's session logs out: it ends now, and the promise resolves once the device has
   * terminated its commands and seen the I_T nexus loss.
   */
  logout(conn: Connection): Promise<void>;
  /** A login ended without a session: `reason` as LoginCounters counts it. */
  loginRefused(conn: Connection, reason: string): void;
  connectionClosed(conn: Connection): void;
  cidOf(conn: Connection): number;
  /** Drop the connection of every session on a target (TARGET COLD RESET, RFC 7143 §11.5.1). */
  closeSessionsOf(target: TargetNode, reason: string): void;
  /** SendTargets: TargetAddress values for a target as seen from this connection. */
  targetAddresses(conn: Connection): string[];
}
