import { createNexus, type ItNexus } from '../scsi/nexus.js';
import { encodeIscsiTransportId } from '../scsi/transport-id.js';
import type { SessionParams } from './negotiation.js';
import { snAdd, snDiff } from './serial.js';
import type { TargetNode } from './target-node.js';
import type { IscsiTask } from './iscsi-task.js';

export type SessionType = 'Discovery' | 'Normal';
/** How the login authenticated: no CHAP, CHAP (RFC 7143 §12.1.3), or CHAP both ways. */
export type SessionAuthentication = 'none' | 'chap' | 'mutual-chap';

/**
 * An iSCSI session (RFC 7143 §4.2): identity (initiator name + ISID, TSIH), negotiated
 * parameters, the command window and the tasks in flight. One connection per session
 * (MaxConnections=1), so the connection owns the StatSN.
 */
export class Session {
  /** Next CmdSN expected in order (RFC 7143 §4.2.2.1). */
  expCmdSN: number;
  /** Non-immediate commands received and not yet answered: they hold window credit. */
  private outstanding = 0;
  /** Tasks in flight by Initiator Task Tag. */
  readonly tasks = new Map<number, IscsiTask>();
  readonly nexus: ItNexus;
  closed = false;
  /** When the login completed (Date.now()). */
  readonly startedAt = Date.now();

  constructor(
    readonly tsih: number,
    readonly type: SessionType,
    readonly initiatorName: string,
    readonly isid: string,
    readonly target: TargetNode | null,
    readonly params: SessionParams,
    readonly readOnly: boolean,
    initialCmdSN: number,
    private readonly window: number,
    /** The portal group the session came through and the ALUA target port group it belongs to. */
    port: { tpgt: number; group: number },
    readonly authentication: SessionAuthentication = 'none',
    readonly initiatorAlias?: string,
  ) {
    this.expCmdSN = initialCmdSN;
    this.nexus = iscsiNexus(initiatorName, isid, target?.iqn ?? 'discovery', port, readOnly);
  }

  /**
   * MaxCmdSN as credit: the window shrinks while commands are outstanding, so a slow backend
   * throttles the initiator instead of growing our queues (RFC 7143 §4.2.2.1). It never decreases:
   * a new command takes one credit and advances ExpCmdSN by one.
   */
  get maxCmdSN(): number {
    const credit = Math.max(this.window - this.outstanding, 0);
    return snAdd(this.expCmdSN, credit - 1);
  }

  /**
   * Classify a non-immediate PDU's CmdSN: 'now' (in order: ExpCmdSN advances), 'ahead' (inside
   * the window but beyond a gap), or 'outside' (duplicate or beyond MaxCmdSN: silently ignored).
   */
  classifyCmdSN(cmdSN: number): 'now' | 'ahead' | 'outside' {
    const d = snDiff(cmdSN, this.expCmdSN);
    if (d === 0) return 'now';
    if (d > 0 && snDiff(cmdSN, this.maxCmdSN) <= 0) return 'ahead';
    return 'outside';
  }

  advanceCmdSN(holdsCredit: boolean): void {
    this.expCmdSN = snAdd(this.expCmdSN, 1);
    if (holdsCredit) this.outstanding++;
  }

  releaseCredit(): void {
    if (this.outstanding > 0) this.outstanding--;
  }
}

/**
 * The I_T nexus of an iSCSI session: initiator port "<name>,i,0x<ISID>" and target port
 * "<target>,t,0x<TPGT>" (RFC 7143 §4.2.7.1, SCSI port names). One target port per portal group:
 * the relative port id is the TPGT (1 for TPGT 0, as ids start at 1); `group` is the ALUA target
 * port group of this server's ports.
 */
export function iscsiNexus(initiatorName: string, isid: string, targetName: string, port: { tpgt: number; group: number }, readOnly: boolean): ItNexus {
  const initiatorPort = `${initiatorName},i,0x${isid}`.toLowerCase();
  const tpgt = port.tpgt;
  const portId = tpgt === 0 ? 1 : tpgt & 0xffff;
  return createNexus({
    initiatorName,
    initiatorPort,
    transportId: encodeIscsiTransportId(initiatorPort),
    targetPort: { name: `${targetName},t,0x${(tpgt & 0xffff).toString(16).padStart(4, '0')}`, relativeId: portId, groupId: port.group },
    readOnly,
  });
}

/** TSIH allocation and lookup of live sessions (RFC 7143 §11.12 Login Request, TSIH: never 0 for a session). */
export class SessionRegistry {
  private readonly byTsih = new Map<number, Session>();
  private nextTsih = 1 + Math.floor(Math.random() * 0xfffe);

  allocateTsih(): number {
    for (let i = 0; i < 0xffff; i++) {
      const t = this.nextTsih;
      this.nextTsih = this.nextTsih >= 0xffff ? 1 : this.nextTsih + 1;
      if (!this.byTsih.has(t)) return t;
    }
    throw new Error('no free TSIH');
  }

  add(session: Session): void {
    this.byTsih.set(session.tsih, session);
  }

  remove(session: Session): void {
    if (this.byTsih.get(session.tsih) === session) this.byTsih.delete(session.tsih);
  }

  get(tsih: number): Session | undefined {
    return this.byTsih.get(tsih);
  }

  /** The session an initiator port (name + ISID) already has with a target (§6.3.5 reinstatement). */
  findByInitiatorPort(initiatorName: string, isid: string, target: TargetNode | null): Session | undefined {
    const name = initiatorName.toLowerCase();
    for (const s of this.byTsih.values()) {
      if (s.isid === isid && s.target === target && s.initiatorName.toLowerCase() === name) return s;
    }
    return undefined;
  }

  all(): IterableIterator<Session> {
    return this.byTsih.values();
  }

  get size(): number {
    return this.byTsih.size;
  }
}
