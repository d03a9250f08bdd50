import net from 'node:net';
import type { Logger } from 'pino';
import type { EffectiveConfig, IscsiSettings, PortalConfig, TargetDefinition } from '../config/types.js';
import { defaultNodeName, nodeGroup, nodePortals, openSharedTarget, openSharedUnit, type SharingNodeConfig } from '../cluster/shared-target.js';
import { TargetReload, type ReloadHost, type ReloadOutcome } from './target-reload.js';
import type { SharingTiming } from '../cluster/shared-lun.js';
import { Connection } from './connection.js';
import { DataBudget } from './data-budget.js';
import { BufferPool } from '../pdu/buffer-pool.js';
import { BusyPoll } from './busy-poll.js';
import { LoginFailure, LoginStatus } from './login-status.js';
import type { LoginOutcome } from './login.js';
import { Session, SessionRegistry } from './session.js';
import type { ServerContext } from './server-context.js';
import { AUTH_DEFAULTS, AuthService } from '../auth/service.js';
import { normalize as normalizeAddress } from '../auth/backoff.js';
import { formatHostPort } from '../config/portal.js';
import { TargetNode } from './target-node.js';
import type { CallBounds } from '../backend/bounded-backend.js';
import { cachedReadsAvailable } from '../backend/native-io.js';
import { DEFAULT_ISCSI_SETTINGS } from '../config/schema.js';
import { LoginCounters } from './io-stats.js';

/**
 * Bytes queued on a socket before the connection stops reading new commands (back-pressure):
 * room for a full window of large reads in flight without pausing on every Data-In burst.
 */
const SOCKET_HIGH_WATER_MARK = 8 * 1024 * 1024;

/** Default for iscsi.maxDataInFlight: command data all connections may hold at once. */
const DATA_BUDGET_BYTES = 64 * 1024 * 1024;

/** libuv's thread pool as this process runs it: UV_THREADPOOL_SIZE (1 to 1024), else libuv's 4. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number.parseInt(env['UV_THREADPOOL_SIZE'] ?? '', 10);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/**
 * The bounds of every LUN's backend calls (bounded-backend.ts): the configured deadline, and the
 * configured calls per LUN — below the pool size, so that one hung LUN leaves threads for the
 * others (at most half the pool when the configured number does not fit).
 */
export function backendCallBounds(settings: IscsiSettings, pool: number): CallBounds & { clamped: boolean } {
  const wanted = settings.backendCallsPerLun ?? DEFAULT_ISCSI_SETTINGS.backendCallsPerLun!;
  const maxInFlight = wanted < pool ? wanted : Math.max(1, Math.floor(pool / 2));
  const deadlineMs = (settings.backendTimeout ?? DEFAULT_ISCSI_SETTINGS.backendTimeout!) * 1000;
  return { maxInFlight, deadlineMs, clamped: maxInFlight !== wanted };
}

export interface ServerOptions {
  /** This node's name among the servers sharing LUN files (default: $GLFS_TARGET_NODE or the host name). */
  nodeName?: string;
  /** Timings of the LUN sharing protocol (tests shorten them). */
  timing?: SharingTiming;
}

/**
 * The iSCSI target server: opens (and locks) every LUN's backing file, listens on the
 * configured portals and owns the live sessions.
 */
export class IscsiServer implements ServerContext {
  readonly log: Logger;
  private config: EffectiveConfig;
  private readonly targets = new Map<string, TargetNode>();
  private readonly listeners: net.Server[] = [];
  /** The port each portal actually listens on (differs from the config for port 0). */
  private readonly boundPort = new Map<PortalConfig, number>();
  private readonly connections = new Set<Connection>();
  private readonly sessions = new SessionRegistry();
  private readonly sessionConnection = new Map<Session, Connection>();
  /** The session each connection carries, from the moment the login establishes it. */
  private readonly connectionSession = new Map<Connection, Session>();
  private readonly connectionCid = new Map<Connection, number>();
  private loggingIn = 0;
  readonly dataBudget: DataBudget;
  readonly bufferPool: BufferPool;
  readonly busyPoll = new BusyPoll(() => this.config.iscsi.busyPollMicroseconds ?? DEFAULT_ISCSI_SETTINGS.busyPollMicroseconds!);
  /** Connections in the login phase per source address, and each such connection's address. */
  private readonly loggingInFrom = new Map<string, number>();
  private readonly loginAddress = new Map<Connection, string>();
  private stopping = false;
  /** CHAP keyring (replaced on reload) and the per-address authentication back-off. */
  readonly auth: AuthService;
  /** Logins established and refused since start (status, metrics). */
  readonly logins = new LoginCounters();

  /** The portals as this node serves them (TPGTs shifted per node, see nodePortals). */
  private portals: PortalConfig[];
  /** This server among the nodes sharing LUN files; set by start(). */
  private sharing: SharingNodeConfig = { name: '', group: 1, relativePortIds: [] };
  /** Bounds of every LUN's backend calls; set by start(). */
  private callBounds: CallBounds | undefined;

  constructor(config: EffectiveConfig, logger: Logger, private readonly options: ServerOptions = {}) {
    this.config = config;
    this.portals = config.portals;
    this.log = logger;
    this.dataBudget = new DataBudget(config.iscsi.maxDataInFlight ?? DATA_BUDGET_BYTES);
    this.bufferPool = new BufferPool(config.iscsi.maxDataInFlight ?? DATA_BUDGET_BYTES);
    this.auth = new AuthService(config.iscsi);
  }

  get settings(): IscsiSettings {
    return this.config.iscsi;
  }

  /** Addresses actually bound, in portal order (useful with port 0). */
  addresses(): net.AddressInfo[] {
    return this.listeners.map((l) => l.address() as net.AddressInfo);
  }

  async start(): Promise<void> {
    // CHAP secrets first: a missing or weak secret must stop the start-up before anything is opened.
    this.auth.install(await this.auth.prepare(this.config), this.config);
    try {
      const name = this.options.nodeName ?? defaultNodeName();
      const group = await nodeGroup(this.config.targets, name);
      this.portals = nodePortals(this.config.portals, group);
      this.sharing = { name, group, relativePortIds: this.portals.map((p) => p.tpgt), ...(this.options.timing ? { timing: this.options.timing } : {}) };
      this.callBounds = this.logCallBounds();
      for (const def of this.config.targets) this.targets.set(def.iqn.toLowerCase(), await this.openTarget(def));
      for (const portal of this.portals) this.listeners.push(await this.listen(portal));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** The backend call bounds, logged with the thread pool they share (warned when clamped to fit it). */
  private logCallBounds(): CallBounds {
    const pool = threadPoolSize();
    const { clamped, ...bounds } = backendCallBounds(this.settings, pool);
    // cachedReads: whether the native addon loaded (reads of cached local data skip the pool).
    const details = { threadPool: pool, backendCallsPerLun: bounds.maxInFlight, backendTimeoutSeconds: bounds.deadlineMs / 1000, cachedReads: cachedReadsAvailable };
    if (clamped) this.log.warn({ ...details, configured: this.settings.backendCallsPerLun }, 'iscsi.backendCallsPerLun does not fit the file I/O thread pool (UV_THREADPOOL_SIZE): one hung LUN could take all of it; using half the pool');
    else this.log.info(details, 'file I/O thread pool: a LUN whose storage hangs holds at most backendCallsPerLun threads');
    return bounds;
  }

  private async openTarget(def: TargetDefinition): Promise<TargetNode> {
    const device = await openSharedTarget(def, this.sharing, this.log, this.callBounds);
    const node = new TargetNode(def, device);
    try {
      await device.opened();
    } catch (err) {
      // The LU answers NOT READY until an operator repairs its state; other LUs serve on.
      this.log.error({ err, target: def.iqn }, 'persisted reservation state unusable');
    }
    return node;
  }

  private listen(portal: PortalConfig): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      // Paused: Connection re-wraps each socket to read into a shared buffer (socket-reader.ts).
      const server = net.createServer({ noDelay: true, pauseOnConnect: true, highWaterMark: SOCKET_HIGH_WATER_MARK }, (socket) => this.accept(socket, portal));
      server.once('error', reject);
      server.listen({ host: portal.host, port: portal.port, backlog: 511 }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.error({ err }, 'listener error'));
        const a = server.address() as net.AddressInfo;
        this.boundPort.set(portal, a.port);
        this.log.info({ address: a.address, port: a.port, tpgt: portal.tpgt }, 'portal listening');
        resolve(server);
      });
    });
  }

  private accept(socket: net.Socket, portal: PortalConfig): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    if (this.loggingIn >= this.settings.maxPendingLogins) {
      this.log.warn({ remote: socket.remoteAddress, limit: this.settings.maxPendingLogins }, 'too many connections in login; refusing connection');
      this.logins.refusedFor('too-many-logins');
      socket.destroy();
      return;
    }
    const address = normalizeAddress(socket.remoteAddress ?? '');
    const fromAddress = this.loggingInFrom.get(address) ?? 0;
    const perAddress = this.settings.maxPendingLoginsPerAddress ?? AUTH_DEFAULTS.maxPendingLoginsPerAddress;
    if (fromAddress >= perAddress) {
      this.log.warn({ remote: socket.remoteAddress, limit: perAddress }, 'too many connections in login from this address; refusing connection');
      this.logins.refusedFor('too-many-logins-from-address');
      socket.destroy();
      return;
    }
    this.loggingIn++;
    this.loggingInFrom.set(address, fromAddress + 1);
    const conn = new Connection(socket, portal, this);
    this.loginAddress.set(conn, address);
    this.connections.add(conn);
  }

  /** A connection left the login phase (full feature phase, or closed during login). */
  private loginEnded(conn: Connection): void {
    this.loggingIn--;
    const address = this.loginAddress.get(conn);
    if (address === undefined) return;
    this.loginAddress.delete(conn);
    const n = (this.loggingInFrom.get(address) ?? 1) - 1;
    if (n <= 0) this.loggingInFrom.delete(address);
    else this.loggingInFrom.set(address, n);
  }

  findTarget(iqn: string): TargetNode | undefined {
    return this.targets.get(iqn.toLowerCase());
  }

  visibleTargets(initiatorName: string): TargetNode[] {
    return [...this.targets.values()].filter((t) => t.aclEntry(initiatorName) !== undefined);
  }

  async establish(conn: Connection, outcome: LoginOutcome): Promise<Session> {
    if (this.stopping) throw new LoginFailure(LoginStatus.ServiceUnavailable, 'server is shutting down');
    if (outcome.requestedTsih !== 0) {
      this.checkExistingSession(outcome.requestedTsih, outcome.cid, outcome.initiatorName, outcome.isid, outcome.target);
    }
    // §6.3.5 session reinstatement: a login with TSIH 0 from an initiator port that already has
    // a session with this target ends the old session (its tasks first), then starts afresh.
    const old = outcome.requestedTsih !== 0
      ? this.sessions.get(outcome.requestedTsih)
      : outcome.type === 'Normal' ? this.sessions.findByInitiatorPort(outcome.initiatorName, outcome.isid, outcome.target) : undefined;
    if (old !== undefined) {
      this.log.info({ initiator: old.initiatorName, isid: old.isid, tsih: old.tsih }, 'reinstating session');
      await this.endSession(old, 'session reinstatement');
      // The login timed out (or the initiator left) while the old session's tasks ended: a session
      // made now would belong to no connection and never end.
      if (conn.isClosed) throw new LoginFailure(LoginStatus.ServiceUnavailable, 'connection closed during session reinstatement');
    }
    const tsih = this.sessions.allocateTsih();
    const session = new Session(
      tsih, outcome.type, outcome.initiatorName, outcome.isid, outcome.target, outcome.params,
      outcome.acl?.readOnly ?? false, outcome.cmdSN, this.settings.cmdWindow, { tpgt: conn.portal.tpgt, group: this.sharing.group },
      outcome.authentication, outcome.initiatorAlias,
    );
    this.sessions.add(session);
    this.sessionConnection.set(session, conn);
    this.connectionSession.set(conn, session);
    this.connectionCid.set(conn, outcome.cid);
    return session;
  }

  private async endSession(session: Session, reason: string): Promise<void> {
    const conn = this.sessionConnection.get(session);
    if (session.closed || conn === undefined) return;
    const retired = this.retire(session, conn);
    conn.destroy(reason);
    await retired;
  }

  /**
   * Forget a session now; resolves once the device has ended its tasks and seen the I_T nexus
   * loss (SAM-5 §6.3.4: SPC-2 reservations held through it end).
   */
  private async retire(session: Session, conn: Connection): Promise<void> {
    session.closed = true;
    this.sessions.remove(session);
    this.sessionConnection.delete(session);
    this.connectionSession.delete(conn);
    await session.target?.device.nexusLost(session.nexus);
  }

  /**
   * Adding a connection to an existing session (§6.3.4): the session must exist for this
   * initiator port, and with MaxConnections=1 only connection reinstatement (same CID) fits.
   */
  checkExistingSession(tsih: number, cid: number, initiatorName: string, isid: string, target: TargetNode | null): void {
    const existing = this.sessions.get(tsih);
    if (existing === undefined || existing.isid !== isid || existing.target !== target
        || existing.initiatorName.toLowerCase() !== initiatorName.toLowerCase()) {
      throw new LoginFailure(LoginStatus.SessionDoesNotExist, `session TSIH ${tsih} does not exist`);
    }
    const old = this.sessionConnection.get(existing);
    if (old !== undefined && this.connectionCid.get(old) !== cid) {
      throw new LoginFailure(LoginStatus.TooManyConnections, 'MaxConnections=1 and the session has a connection');
    }
  }

  loginCompleted(conn: Connection, s: Session): void {
    this.loginEnded(conn);
    this.logins.loggedIn(s.type);
    const p = s.params;
    this.log.info({
      conn: conn.id, remote: conn.remote, initiator: s.initiatorName, target: s.target?.iqn ?? null, sessionType: s.type, isid: s.isid, tsih: s.tsih,
      headerDigest: p.headerDigest, dataDigest: p.dataDigest, immediateData: p.immediateData, initialR2T: p.initialR2T,
      maxRecvDataSegmentLength: p.initiatorMaxRecvDataSegmentLength, maxBurstLength: p.maxBurstLength, firstBurstLength: p.firstBurstLength,
      authentication: s.authentication,
    }, 'login');
  }

  loginRefused(_conn: Connection, reason: string): void {
    this.logins.refusedFor(reason);
  }

  async logout(conn: Connection): Promise<void> {
    const s = this.connectionSession.get(conn);
    if (s !== undefined && this.sessionConnection.get(s) === conn) await this.retire(s, conn);
  }

  connectionClosed(conn: Connection): void {
    if (!this.connections.delete(conn)) return;
    if (conn.inLogin) this.loginEnded(conn);
    this.connectionCid.delete(conn);
    const s = this.connectionSession.get(conn);
    if (s !== undefined && this.sessionConnection.get(s) === conn) {
      // ERL 0 with one connection per session: losing the connection ends the session (RFC 7143 §7, session recovery).
      this.log.info({ conn: conn.id, initiator: s.initiatorName, tsih: s.tsih }, 'connection lost; session ended');
      void this.retire(s, conn);
    }
  }

  // ── Read-only views for status and metrics (src/ops) ─────────────────────────────────────────

  /** This server among the nodes sharing LUN files: its node name and ALUA target port group. */
  get node(): { readonly name: string; readonly group: number } {
    return { name: this.sharing.name, group: this.sharing.group };
  }

  /** The portals as served (TPGTs shifted per node), each with the address it is bound to. */
  listeningPortals(): Array<{ address: string; tpgt: number }> {
    return this.portals.map((p) => ({ address: formatHostPort({ host: p.host, port: this.boundPort.get(p) ?? p.port }), tpgt: p.tpgt }));
  }

  /** The targets, in configuration order. */
  targetNodes(): TargetNode[] {
    return [...this.targets.values()];
  }

  /** Every session in full feature phase with the connection that carries it. */
  liveSessions(): Array<{ session: Session; connection: Connection }> {
    return [...this.sessionConnection].map(([session, connection]) => ({ session, connection }));
  }

  cidOf(conn: Connection): number {
    return this.connectionCid.get(conn) ?? 0;
  }

  closeSessionsOf(target: TargetNode, reason: string): void {
    for (const s of [...this.sessions.all()]) {
      if (s.target === target) this.sessionConnection.get(s)?.close(reason);
    }
  }

  /**
   * TargetAddress values (RFC 7143 §13.8 / Appendix C): every portal as "address:port,tpgt", using
   * its `advertise` address when set, else the address this connection reached for wildcard
   * portals; the portal the initiator used comes first.
   */
  targetAddresses(conn: Connection): string[] {
    const local = conn.socket.localAddress ?? '127.0.0.1';
    const ordered = [conn.portal, ...this.portals.filter((p) => p !== conn.portal)];
    const seen = new Set<string>();
    const out: string[] = [];
    for (const p of ordered) {
      let hostPort: string;
      if (p.advertise !== undefined) hostPort = p.advertise;
      else {
        const wildcard = p.host === '0.0.0.0' || p.host === '::' || p.host === '';
        const host = wildcard ? local.replace(/^::ffff:/, '') : p.host;
        hostPort = `${host.includes(':') ? `[${host}]` : host}:${this.boundPort.get(p) ?? p.port}`;
      }
      const value = `${hostPort},${p.tpgt}`;
      if (!seen.has(value)) {
        seen.add(value);
        out.push(value);
      }
    }
    return out;
  }

  /**
   * Apply a new configuration without dropping sessions (target-reload.ts): targets and LUNs are
   * added and removed, LUNs grow; ACLs (with their CHAP secrets, read again now), discovery CHAP,
   * aliases and iSCSI settings take effect for new logins, and established sessions keep what they
   * logged in with. Returns what changed and what needs a restart (portals, LUN settings other than
   * the size). Rejects, changing nothing, when a CHAP secret cannot be read or is too weak, a LUN
   * would shrink (ReloadRefused) or a new LUN cannot be opened.
   */
  async reload(config: EffectiveConfig): Promise<ReloadOutcome> {
    const host: ReloadHost = {
      log: this.log, targets: this.targets, closeSessionsOf: (t, reason) => this.closeSessionsOf(t, reason),
      openTarget: (def) => this.openTarget(def),
      openUnit: (def, lun) => openSharedUnit(def, lun, this.sharing, this.log, this.callBounds),
    };
    const change = await TargetReload.prepare(host, config.targets);
    const needRestart = [...change.needRestart];
    if (JSON.stringify(config.portals) !== JSON.stringify(this.config.portals)) needRestart.push('portals');
    let keyring;
    try {
      // Read every secret before changing anything.
      keyring = await this.auth.prepare({ targets: config.targets, ...(config.discovery !== undefined ? { discovery: config.discovery } : {}) });
    } catch (err) {
      await change.abandon();
      throw err;
    }
    await change.commit();
    // Definitions and keyring switch together (synchronously, so no login sees a new ACL entry with the old keyring).
    for (const [node, def] of change.definitions) node.definition = def;
    this.config = { ...config, portals: this.config.portals, targets: config.targets.map((t) => this.targets.get(t.iqn.toLowerCase())?.definition ?? t) };
    this.auth.install(keyring, this.config);
    if (change.done.length > 0) this.log.info({ changes: change.done }, `reload: ${change.done.join(', ')}`);
    return { changed: change.done, needRestart };
  }

  /** Stop accepting, let in-flight commands finish (bounded), flush and close every LUN. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    // net.Server.close() calls back only once every connection is gone: stop listening now,
    // wait for that at the end (connections still in login have nothing to finish).
    const listenersClosed = Promise.all(this.listeners.map((l) => new Promise<void>((r) => l.close(() => r()))));
    this.listeners.length = 0;
    for (const c of [...this.connections]) if (c.inLogin) c.destroy('server stopping');
    const conns = [...this.connections];
    const drained = Promise.all(conns.map((c) => c.drain()));
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    if ((await Promise.race([drained, timeout])) === 'timeout') this.log.warn('in-flight commands still running at shutdown; closing anyway');
    for (const c of conns) c.destroy('server stopping');
    await listenersClosed;
    for (const t of this.targets.values()) {
      try {
        await t.device.close();
      } catch (err) {
        this.log.error({ err, target: t.iqn }, 'closing LUNs failed');
      }
    }
    this.targets.clear();
  }
}
