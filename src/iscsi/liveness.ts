import type { Socket } from 'node:net';
import type { IscsiSettings } from '../config/types.js';
import { RejectReason, RESERVED_TAG } from '../pdu/opcodes.js';
import type { Pdu } from '../pdu/pdu.js';
import { nopInHeader } from '../pdu/target-pdus.js';
import { OutputWatch } from './output-watch.js';
import type { SessionPort } from './session-port.js';

/** What a connection's liveness checks act through. */
export interface LivenessHost {
  readonly settings: IscsiSettings;
  readonly isClosed: boolean;
  /** Send a target NOP-In ping (RFC 7143 §11.19, TTT set, ITT reserved). */
  ping(): void;
  /** End tasks whose Data-Out has not come for `timeoutMs` (full feature phase). */
  expireDataOut(now: number, timeoutMs: number): void;
  /** Drop the connection; `why` is logged. */
  drop(reason: string, why: string, details: Record<string, unknown>): void;
}

/**
 * The timers of one connection in full feature phase:
 * - NOP-In pings after nopInInterval of silence; any PDU counts as an answer, and nopInTimeout
 *   of further silence means the connection is dead (§11.19);
 * - every nopInTimeout / 2, the Data-Out timeout (CommandPath.expireDataOut) and a check that the
 *   peer takes our output: one that has taken none of it for nopInTimeout would hold its read
 *   data in the budget for ever, so its connection is dropped.
 */
export class ConnectionLiveness {
  private lastReceive = Date.now();
  private pingSentAt = 0;
  private pingTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly output: OutputWatch;

  constructor(private readonly host: LivenessHost, socket: Socket) {
    this.output = new OutputWatch(socket);
  }

  /** Bytes arrived from the peer. */
  received(): void {
    this.lastReceive = Date.now();
  }

  /** A NOP-Out answered our ping. */
  pingAnswered(): void {
    this.pingSentAt = 0;
  }

  start(): void {
    this.watchdog = setInterval(() => this.watch(), this.host.settings.nopInTimeout * 500);
    this.watchdog.unref();
    this.schedulePing();
  }

  stop(): void {
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    if (this.watchdog !== null) clearInterval(this.watchdog);
  }

  private watch(): void {
    const host = this.host;
    if (host.isClosed) return;
    const now = Date.now();
    const timeoutMs = host.settings.nopInTimeout * 1000;
    host.expireDataOut(now, timeoutMs);
    if (this.output.stalled(now, timeoutMs)) {
      host.drop('output stalled', 'peer takes none of our output; dropping connection', { queuedBytes: this.output.queuedBytes, timeoutSeconds: host.settings.nopInTimeout });
    }
  }

  private schedulePing(): void {
    const s = this.host.settings;
    if (s.nopInInterval <= 0 || this.host.isClosed) return;
    this.pingTimer = setTimeout(() => this.pingTick(), Math.min(s.nopInInterval, s.nopInTimeout) * 500);
    this.pingTimer.unref();
  }

  private pingTick(): void {
    const host = this.host;
    if (host.isClosed) return;
    const s = host.settings;
    const now = Date.now();
    if (this.pingSentAt !== 0 && this.lastReceive < this.pingSentAt && now - this.pingSentAt >= s.nopInTimeout * 1000) {
      host.drop('nop timeout', 'no answer to NOP-In; dropping connection', { timeoutSeconds: s.nopInTimeout });
      return;
    }
    if (this.lastReceive >= this.pingSentAt) this.pingSentAt = 0;
    if (this.pingSentAt === 0 && now - this.lastReceive >= s.nopInInterval * 1000) {
      this.pingSentAt = now;
      host.ping();
    }
    this.schedulePing();
  }
}

/** NOP-Out (RFC 7143 §11.18 / §11.19): an answer to our ping, or a ping to echo with its data. */
export function answerNopOut(pdu: Pdu, port: Pick<SessionPort, 'send' | 'reject'>, liveness: ConnectionLiveness): void {
  if (pdu.itt === RESERVED_TAG) {
    // Answer to our ping (TTT echoed) or a bare ExpStatSN update: no reply.
    if (pdu.targetTransferTag !== RESERVED_TAG) liveness.pingAnswered();
    return;
  }
  if (pdu.targetTransferTag !== RESERVED_TAG) {
    port.reject(RejectReason.InvalidPduField, pdu.bhs, 'NOP-Out with ITT and TTT both set');
    return;
  }
  // The ping data is echoed back (§11.19, Ping Data).
  port.send(nopInHeader(pdu.itt, RESERVED_TAG, pdu.lunField), pdu.data.length > 0 ? Buffer.from(pdu.data) : undefined, true);
}
