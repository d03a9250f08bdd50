import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { IscsiSettings, PortalConfig } from '../config/types.js';
import { PduFramer, type FramingError } from '../pdu/framer.js';
import { Opcode, OPCODE_NAMES, RejectReason, RESERVED_TAG } from '../pdu/opcodes.js';
import { Pdu } from '../pdu/pdu.js';
import { logoutResponseHeader, nopInHeader, rejectHeader } from '../pdu/target-pdus.js';
import { PduWriter } from '../pdu/writer.js';
import { readThroughSharedBuffer } from './socket-reader.js';
import { LoginHandler, type LoginContext } from './login.js';
import { loginStatusName } from './login-status.js';
import type { Session } from './session.js';
import { snAdd } from './serial.js';
import { CommandPath } from './command-path.js';
import { answerNopOut, ConnectionLiveness } from './liveness.js';
import { ParkedCommands } from './parked-commands.js';
import { handleTaskManagement } from './task-management.js';
import { TextExchange } from './text-exchange.js';
import type { ServerContext } from './server-context.js';
import type { SessionPort } from './session-port.js';

let connectionIds = 0;
const PAUSE_DRAIN = 1;
const PAUSE_MEMORY = 2;
/**
 * Login Requests that may wait while a login step completes. The login phase is one request, one
 * response (RFC 7143 §6.3, §11.12.2): an initiator that sends more before its answer breaks it.
 */
const MAX_QUEUED_LOGIN_PDUS = 4;

/** Login phase (RFC 7143 §6.3): PDUs go to the login handler one step at a time. */
interface LoginPhase {
  readonly kind: 'login';
  readonly handler: LoginHandler;
  /** A login step is completing (session reinstatement waits for old tasks). */
  busy: boolean;
  /** PDUs that arrived meanwhile, in order; at most MAX_QUEUED_LOGIN_PDUS. */
  readonly queue: Pdu[];
  readonly timer: NodeJS.Timeout;
}

/** Full feature phase (RFC 7143 §7): the session and its handlers, which see it through a SessionPort. */
interface FullFeaturePhase {
  readonly kind: 'full';
  readonly session: Session;
  readonly port: SessionPort;
  readonly commands: CommandPath;
  readonly text: TextExchange;
  /** Non-immediate PDUs that arrived ahead of a CmdSN gap. */
  readonly ahead: ParkedCommands;
  loggingOut: boolean;
}

/**
 * One TCP connection: framing, the login phase, then the full feature phase (RFC 7143 §7):
 * command ordering by CmdSN, NOP keep-alive, text, task management and logout.
 * Everything a peer sends is checked; protocol errors get a Reject or a login status, and a
 * connection that cannot continue is dropped without affecting others.
 */
export class Connection {
  readonly id = ++connectionIds;
  readonly log: Logger;
  readonly writer: PduWriter;
  private readonly framer: PduFramer;
  private phase: LoginPhase | FullFeaturePhase;
  statSN = 0;
  private statSNStarted = false;
  private closed = false;
  private readonly liveness: ConnectionLiveness;
  private nextTtt = 1;
  /** Why the socket is not being read: PAUSE_DRAIN (our output backs up), PAUSE_MEMORY (data budget). */
  private pauses = 0;

  readonly socket: Socket;
  /** The initiator's end of the connection, "address:port" ("[v6]:port"). */
  readonly remote: string;
  /** The address:port the initiator connected to (a wildcard portal's actual address). */
  readonly local: string;

  /** `accepted` comes from a listener with `pauseOnConnect` (see readThroughSharedBuffer). */
  constructor(
    accepted: Socket,
    readonly portal: PortalConfig,
    private readonly ctx: ServerContext,
  ) {
    const socket = readThroughSharedBuffer(accepted, (chunk) => this.receive(chunk));
    this.socket = socket;
    this.remote = endpoint(socket.remoteAddress, socket.remotePort);
    this.local = endpoint(socket.localAddress, socket.localPort);
    this.log = ctx.log.child({ conn: this.id, remote: this.remote });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    this.writer = new PduWriter(socket);
    const conn = this;
    this.liveness = new ConnectionLiveness({
      settings: ctx.settings,
      get isClosed() { return conn.closed; },
      ping: () => this.send(nopInHeader(RESERVED_TAG, this.allocateTtt(), Buffer.alloc(8))),
      expireDataOut: (now, timeoutMs) => { if (this.phase.kind === 'full') this.phase.commands.expireDataOut(now, timeoutMs); },
      drop: (reason, why, details) => {
        this.log.warn({ ...this.identity(), ...details }, why);
        this.destroy(reason);
      },
    }, socket);
    this.framer = new PduFramer((pdu) => this.onPdu(pdu), (err) => this.onFramingError(err), ctx.bufferPool);
    const loginCtx: LoginContext = {
      settings: ctx.settings,
      portal,
      findTarget: (iqn) => ctx.findTarget(iqn),
      establish: (outcome) => ctx.establish(this, outcome),
      checkExistingSession: (tsih, cid, name, isid, target) => ctx.checkExistingSession(tsih, cid, name, isid, target),
      auth: ctx.auth,
      remoteAddress: socket.remoteAddress ?? '',
    };
    const handler = new LoginHandler(loginCtx);
    const timer = setTimeout(() => {
      this.log.warn({ ...handler.who, timeoutSeconds: ctx.settings.loginTimeout }, 'login timed out; closing connection');
      ctx.loginRefused(this, 'login-timeout');
      this.close('login timeout');
    }, ctx.settings.loginTimeout * 1000);
    timer.unref();
    this.phase = { kind: 'login', handler, busy: false, queue: [], timer };
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'socket error'));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.resume(PAUSE_DRAIN));
  }

  /** Bytes from the socket; `chunk` is only valid during the call (PduFramer copies what it keeps). */
  private receive(chunk: Buffer): void {
    this.liveness.received();
    this.ctx.busyPoll.activity(true);
    this.framer.push(chunk);
    if (this.phase.kind !== 'full' || (this.pauses & PAUSE_MEMORY) !== 0) return;
    // The session holds its share of the DataBudget (or holds data while all of it is used):
    // stop reading until its data has gone to the file or the socket.
    const account = this.phase.commands.account;
    if (account.overShare) {
      this.pause(PAUSE_MEMORY);
      this.ctx.dataBudget.watch(() => {
        if (!account.mayResumeReceiving && !this.closed) return false;
        this.resume(PAUSE_MEMORY);
        return true;
      });
    }
  }

  get settings(): IscsiSettings {
    return this.ctx.settings;
  }

  get inLogin(): boolean {
    return this.phase.kind === 'login';
  }

  /** The session, once in full feature phase. */
  get session(): Session | null {
    return this.phase.kind === 'full' ? this.phase.session : null;
  }

  /** Resolves once every command of this connection handed to the SCSI layer has finished. */
  drain(): Promise<void> {
    return this.phase.kind === 'full' ? this.phase.commands.drain() : Promise.resolve();
  }

  allocateTtt(): number {
    const t = this.nextTtt;
    this.nextTtt = this.nextTtt >= 0xfffffffe ? 1 : this.nextTtt + 1;
    return t;
  }

  /**
   * Send a target PDU, stamping StatSN (advanced when `advanceStatSN`), ExpCmdSN and MaxCmdSN
   * (offsets 24/28/32 in every target PDU, RFC 7143 §11). `onWritten`: see PduWriter.send; it
   * does not run on a closed connection.
   */
  send(header: Buffer, data?: Buffer, advanceStatSN = false, onWritten?: () => void): void {
    if (this.closed) return;
    header.writeUInt32BE(this.statSN, 24);
    if (advanceStatSN) this.statSN = snAdd(this.statSN, 1);
    if (this.phase.kind === 'full') {
      const s = this.phase.session;
      header.writeUInt32BE(s.expCmdSN, 28);
      header.writeUInt32BE(s.maxCmdSN, 32);
    }
    this.ctx.busyPoll.activity(false);
    if (!this.writer.send(header, data, onWritten) && !this.socket.destroyed) {
      // Back-pressure: stop reading new commands until the initiator drains our responses.
      this.pause(PAUSE_DRAIN);
    }
  }

  private pause(reason: number): void {
    if (this.pauses === 0) this.socket.pause();
    this.pauses |= reason;
  }

  private resume(reason: number): void {
    if ((this.pauses & reason) === 0) return;
    this.pauses &= ~reason;
    if (this.pauses === 0 && !this.closed) this.socket.resume();
  }

  reject(reason: RejectReason, offending: Buffer, why: string): void {
    this.log.warn({ reason, opcode: OPCODE_NAMES[offending[0]! & 0x3f] ?? offending[0]! & 0x3f, why }, 'rejecting PDU');
    const h = rejectHeader(reason);
    this.send(h, Buffer.from(offending.subarray(0, 48)), true);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.log.debug({ reason }, 'closing connection');
    this.framer.stop();
    this.socket.end();
    // Give the final PDUs a moment to leave, then make sure the socket is gone.
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.onClose();
  }

  /** Abruptly drop the connection (session reinstatement, cold reset, fatal protocol error). */
  destroy(reason: string): void {
    this.log.info({ reason }, 'dropping connection');
    this.socket.destroy();
    this.onClose();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.framer.stop();
    if (this.phase.kind === 'login') clearTimeout(this.phase.timer);
    else this.leaveFullFeature(this.phase);
    this.liveness.stop();
    this.ctx.connectionClosed(this);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onFramingError(err: FramingError): void {
    switch (err.kind) {
      case 'header-digest':
        // §7.8: at ERL 0 a header digest error ends the connection.
        this.log.warn({ why: err.message }, 'header digest error; dropping connection');
        this.destroy('header digest error');
        return;
      case 'data-digest': {
        // §7.8: the payload is discarded and rejected; the (digest-checked) header still counts,
        // so a command keeps its CmdSN and ends with CHECK CONDITION instead of stalling the window.
        this.reject(RejectReason.DataDigestError, err.bhs, err.message);
        if (this.phase.kind !== 'full') return;
        const pdu = new Pdu(err.bhs, null, Buffer.alloc(0));
        pdu.dataDigestFailed = true;
        if (pdu.opcode === Opcode.ScsiCommand) this.onFullFeaturePdu(this.phase, pdu);
        else if (pdu.opcode === Opcode.DataOut) this.phase.commands.failTransfer(err.bhs, 'data-digest');
        return;
      }
      case 'oversize':
        if (this.phase.kind !== 'full') {
          this.log.warn({ why: err.message }, 'oversized PDU during login; dropping connection');
          this.destroy('oversized login PDU');
          return;
        }
        this.reject(RejectReason.ProtocolError, err.bhs, err.message);
        if ((err.bhs[0]! & 0x3f) === Opcode.ScsiCommand) {
          // As with a data digest error: the header was read, so the command keeps its CmdSN and
          // ends with CHECK CONDITION (its data length no longer matches what arrived).
          this.onFullFeaturePdu(this.phase, new Pdu(err.bhs, null, Buffer.alloc(0)));
        } else {
          this.phase.commands.failTransfer(err.bhs, 'oversize');
        }
        return;
    }
  }

  private onPdu(pdu: Pdu): void {
    if (this.closed) return;
    try {
      if (this.phase.kind === 'login') this.onLoginPdu(this.phase, pdu);
      else this.onFullFeaturePdu(this.phase, pdu);
    } catch (err) {
      // A bug must cost one connection, not the server.
      this.log.error({ err }, 'internal error handling PDU; dropping connection');
      this.destroy('internal error');
    }
  }

  // ── Login phase ──────────────────────────────────────────────────────────────────────

  private onLoginPdu(phase: LoginPhase, pdu: Pdu): void {
    if (phase.busy) {
      if (phase.queue.length >= MAX_QUEUED_LOGIN_PDUS) {
        this.log.warn({ ...phase.handler.who, queued: phase.queue.length }, 'Login Requests sent without waiting for their responses; dropping connection');
        this.destroy('login requests not waiting for responses');
        return;
      }
      phase.queue.push(pdu);
      return;
    }
    if (!this.statSNStarted) {
      // §11.13.4: the first Login Response carries the connection's starting StatSN.
      this.statSN = pdu.expStatSN;
      this.statSNStarted = true;
    }
    phase.busy = true;
    void phase.handler.handle(pdu).then((reply) => {
      phase.busy = false;
      if (this.closed) return;
      reply.header.writeUInt32BE(reply.expCmdSN, 28);
      reply.header.writeUInt32BE(reply.maxCmdSN, 32);
      const done = reply.done;
      if (done === undefined) {
        this.send(reply.header, reply.data, true);
        // The next queued PDU starts the next step; the rest keep waiting (each PDU is queued once).
        const queued = phase.queue.shift();
        if (queued !== undefined) this.onPdu(queued);
        return;
      }
      if (!done.ok) {
        this.send(reply.header, reply.data, true);
        const [cls, detail] = done.failure.status;
        this.log.warn(
          { ...phase.handler.who, status: `0x${((cls << 8) | detail).toString(16).padStart(4, '0')}`, why: done.failure.message },
          'login refused',
        );
        this.ctx.loginRefused(this, loginStatusName(done.failure.status));
        this.close('login refused');
        return;
      }
      // Digests start with the first PDU after the final Login Response (§13.1).
      this.send(reply.header, reply.data, true);
      this.enterFullFeature(phase, done.session);
      for (const p of phase.queue.splice(0)) this.onPdu(p);
    });
  }

  private enterFullFeature(login: LoginPhase, session: Session): void {
    const p = session.params;
    clearTimeout(login.timer);
    const port: SessionPort = {
      session,
      log: this.log.child({ initiator: session.initiatorName, target: session.target?.iqn ?? 'discovery', isid: session.isid, tsih: session.tsih }),
      bufferPool: this.ctx.bufferPool,
      dataBudget: this.ctx.dataBudget,
      get closed() { return conn.closed; },
      send: (header, data, advanceStatSN, onWritten) => this.send(header, data, advanceStatSN, onWritten),
      reject: (reason, offending, why) => this.reject(reason, offending, why),
      allocateTtt: () => this.allocateTtt(),
    };
    const conn = this;
    const directory = { visibleTargets: () => this.ctx.visibleTargets(session.initiatorName), targetAddresses: () => this.ctx.targetAddresses(this) };
    const commands = new CommandPath(port);
    this.phase = {
      kind: 'full', session, port, commands, text: new TextExchange(port, directory),
      ahead: new ParkedCommands(commands.account, this.ctx.bufferPool), loggingOut: false,
    };
    this.framer.headerDigest = p.headerDigest;
    this.framer.dataDigest = p.dataDigest;
    this.framer.maxDataSegmentLength = p.targetMaxRecvDataSegmentLength;
    this.writer.headerDigest = p.headerDigest;
    this.writer.dataDigest = p.dataDigest;
    this.ctx.loginCompleted(this, session);
    this.liveness.start();
  }

  // ── Full feature phase ───────────────────────────────────────────────────────────────

  private onFullFeaturePdu(phase: FullFeaturePhase, pdu: Pdu): void {
    const session = phase.session;
    switch (pdu.opcode) {
      case Opcode.DataOut:
        phase.commands.onDataOut(pdu);
        return;
      case Opcode.ScsiCommand:
      case Opcode.NopOut:
      case Opcode.TaskMgmtRequest:
      case Opcode.TextRequest:
      case Opcode.LogoutRequest:
        break;
      case Opcode.SnackRequest:
        // §11.16: SNACK needs ErrorRecoveryLevel > 0; we negotiate 0.
        this.reject(RejectReason.ProtocolError, pdu.bhs, 'SNACK at ErrorRecoveryLevel 0');
        return;
      case Opcode.LoginRequest:
        this.reject(RejectReason.ProtocolError, pdu.bhs, 'Login Request in full feature phase');
        return;
      default:
        this.reject(RejectReason.CommandNotSupported, pdu.bhs, `opcode 0x${pdu.opcode.toString(16)}`);
        return;
    }
    if (phase.loggingOut) {
      this.reject(RejectReason.WaitingForLogout, pdu.bhs, 'logout in progress');
      return;
    }
    // §4.2.2.1: immediate PDUs are delivered at once; others in CmdSN order, within the window.
    if (pdu.immediate) {
      this.dispatch(phase, pdu);
      return;
    }
    switch (session.classifyCmdSN(pdu.cmdSN)) {
      case 'now':
        session.advanceCmdSN(pdu.opcode === Opcode.ScsiCommand);
        this.dispatch(phase, pdu);
        this.drainAhead(phase);
        return;
      case 'ahead':
        this.park(phase, pdu);
        return;
      case 'outside':
        // Silently ignored (§4.2.2.1), but worth a debug line.
        this.log.debug({ cmdSN: pdu.cmdSN, expCmdSN: session.expCmdSN, maxCmdSN: session.maxCmdSN }, 'CmdSN outside window; ignored');
        return;
    }
  }

  private drainAhead(phase: FullFeaturePhase): void {
    const session = phase.session;
    while (phase.ahead.size > 0) {
      const next = phase.ahead.take(session.expCmdSN);
      if (next === undefined) return;
      session.advanceCmdSN(next.opcode === Opcode.ScsiCommand);
      this.dispatch(phase, next);
    }
  }

  /**
   * §4.2.2.1: a non-immediate PDU beyond a CmdSN gap waits for the gap to fill; its data counts
   * against the session's budget. With one connection per session nothing else can fill the
   * gap, so a gap that holds more than half the session's share of the budget is the initiator's
   * error, and rather than stop reading (it could then never fill it) the connection is dropped.
   */
  private park(phase: FullFeaturePhase, pdu: Pdu): void {
    phase.ahead.park(pdu);
    if (pdu.data.length > 0 && phase.ahead.bytes > this.ctx.dataBudget.share / 2) {
      this.log.warn({ ...this.identity(), expCmdSN: phase.session.expCmdSN, parkedBytes: phase.ahead.bytes }, 'commands behind a CmdSN gap hold too much data; dropping connection');
      this.destroy('CmdSN gap holds too much data');
    }
  }

  private leaveFullFeature(phase: FullFeaturePhase): void {
    phase.ahead.clear();
    phase.commands.closed();
  }

  private dispatch(phase: FullFeaturePhase, pdu: Pdu): void {
    switch (pdu.opcode) {
      case Opcode.ScsiCommand:
        phase.commands.onCommand(pdu);
        return;
      case Opcode.NopOut:
        answerNopOut(pdu, phase.port, this.liveness);
        return;
      case Opcode.TaskMgmtRequest: {
        const target = phase.session.target;
        void handleTaskManagement(phase.port, pdu, () => { if (target !== null) this.ctx.closeSessionsOf(target, 'target cold reset'); });
        return;
      }
      case Opcode.TextRequest:
        phase.text.onTextRequest(pdu);
        return;
      case Opcode.LogoutRequest:
        void this.onLogout(phase, pdu);
        return;
    }
  }

  /** §11.14 / §11.15: close the session (one connection), terminating its pending commands (§11.14). */
  private async onLogout(phase: FullFeaturePhase, pdu: Pdu): Promise<void> {
    const session = phase.session;
    const reason = pdu.logoutReason;
    let response = 0;
    if (reason === 2) response = 2; // connection recovery needs ERL 2
    else if (reason === 1 && pdu.logoutCid !== this.ctx.cidOf(this)) response = 1;
    else if (reason > 2) {
      this.reject(RejectReason.InvalidPduField, pdu.bhs, `logout reason ${reason}`);
      return;
    }
    if (response === 0) {
      phase.loggingOut = true;
      await this.ctx.logout(this);
      await phase.commands.drain(); // the terminated commands have left: their transport state is gone
    }
    const p = session.params;
    this.send(logoutResponseHeader(pdu.itt, response, p.defaultTime2Wait, p.defaultTime2Retain), undefined, true);
    if (response === 0) {
      phase.port.log.info({ reason: reason === 0 ? 'close session' : 'close connection' }, 'logout');
      this.close('logout');
    }
  }

  identity(): Record<string, unknown> {
    const phase = this.phase;
    if (phase.kind === 'login') return { ...phase.handler.who };
    const s = phase.session;
    return { initiator: s.initiatorName, target: s.target?.iqn ?? 'discovery', isid: s.isid, tsih: s.tsih };
  }
}

/** "address:port" of a socket end, IPv4-mapped IPv6 addresses as IPv4, other IPv6 in brackets. */
function endpoint(address: string | undefined, port: number | undefined): string {
  const a = (address ?? '?').replace(/^::ffff:(?=\d+\.)/, '');
  return `${a.includes(':') ? `[${a}]` : a}:${port ?? '?'}`;
}
