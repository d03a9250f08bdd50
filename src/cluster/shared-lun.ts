import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BackendExtent, BlockBackend } from '../backend/block-backend.js';
import { FileBackend, type FileBackendOptions } from '../backend/file-backend.js';
import { isOutOfSpace } from '../backend/out-of-space.js';
import type { AluaState } from '../scsi/alua.js';
import type { ItNexus } from '../scsi/nexus.js';
import { setTargetPortGroupsFailed, type AluaCoordinator, type TargetPortGroupInfo, type TpgStatus } from '../scsi/target-port-groups.js';
import type { AbortWatch, ScsiResponse } from '../scsi/types.js';
import { ClusterView, refuseSameNode, type Heartbeat, type HandoverRequest, type OwnerRecord } from './cluster-view.js';
import { OwnedFile } from './owned-file.js';
import type { LunStateDir } from './state-dir.js';

/** Timings of the ownership protocol (milliseconds). */
export interface SharingTiming {
  /** Heartbeats are written and read, and the lock tried, this often. */
  readonly pollMs: number;
  /** A heartbeat unchanged for this long is a server that is gone. */
  readonly staleMs: number;
  /** An owner hands over implicitly only after this long without media commands. */
  readonly idleMs: number;
  /** A handover request reserves the LUN for the node it names this long; an explicit transition waits at most this long. */
  readonly handoverMs: number;
}

export const DEFAULT_TIMING: SharingTiming = { pollMs: 500, staleMs: 5000, idleMs: 3000, handoverMs: 10_000 };

/** What a server serving a LUN file knows about itself. */
export interface SharingNode {
  readonly name: string;
  /** Target port group of this server's ports (its node number). */
  readonly group: number;
  readonly relativePortIds: readonly number[];
}

/** What the ownership protocol needs from the logical unit it serves. */
export interface SharedUnit {
  setAccessState(state: AluaState): void;
  /** Resolves once no command of the LU is inside the device server. */
  quiesce(): Promise<void>;
  /** Reload persistent reservations another server committed; the version now enforced. */
  refreshReservations(): Promise<number>;
  /** A target port group's access state changed (here or elsewhere): tell the nexuses (2Ah/06h). */
  accessStatesChanged(): void;
  /** The capacity (sizeBytes) grew: tell the nexuses (2Ah/09h). */
  capacityChanged?(): void;
}

/**
 * One LUN file served by several servers (one per gluster node), each through its own mount.
 * Exactly one — the owner — holds the file's exclusive lock and serves media commands (ALUA
 * active/optimized); the others are standby. Ownership is the lock: gluster's locks translator
 * enforces it across clients and releases it only when the holder closes the file (its process
 * ended) or the bricks lose the holder's client (network.ping-timeout). It is never broken by
 * software, so a stopped owner keeps it until it runs again. It moves:
 * - when the owner is gone: a standby's lock attempt succeeds;
 * - on SET TARGET PORT GROUPS (explicit): a handover request; the owner drains, flushes, closes;
 * - on media commands at a standby while the owner has been idle (implicit): the same request.
 * A new owner opens the file afresh — with O_DIRECT on a gluster mount, since the kernel keeps a
 * FUSE file's pages across opens and would serve what this node read while it last owned the
 * file — and records a new epoch; an owner that finds a newer epoch recorded, or cannot reach the
 * volume, stops serving at once, and one whose gluster client was replaced (a remount) steps down
 * and takes the file again through the new client (owned-file.ts).
 *
 * It is the logical unit's BlockBackend (media commands go to the owned file) and its
 * AluaCoordinator (REPORT / SET TARGET PORT GROUPS, implicit transitions).
 */
export class SharedLun implements BlockBackend, AluaCoordinator {
  readonly description: string;
  /** Capacity: changes when the LU grows (grow, or a takeover that finds the file grown). */
  sizeBytes: number;
  readonly allocationUnit: number;
  /** The file while this node owns the LU: where media commands go. */
  private readonly media: OwnedFile;
  private role: 'owner' | 'standby' | 'releasing' = 'standby';
  private epoch = 0;
  private seq = 0;
  private unit: SharedUnit | undefined;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private closed = false;
  private prVersion = 0;
  private lastStatus: TpgStatus = 'none';
  /** The group states last reported (noticeStateChanges). */
  private lastStates = new Map<number, AluaState>();
  /** When the volume last answered this server's heartbeat (an owner without it stops serving). */
  private lastProof = Date.now();
  /** An owner that cannot show it still owns the LU: it serves no media command until the volume answers. */
  private fenced = false;
  /** The last heartbeat found the volume full (logged once). */
  private volumeFull = false;
  /** A poll is running (tick). */
  private polling = false;
  /** When the running poll started waiting for the volume (heartbeats); null when it is not waiting. */
  private provingSince: number | null = null;
  private readonly view: ClusterView;

  private constructor(
    private readonly state: LunStateDir,
    private readonly node: SharingNode,
    private fileOptions: FileBackendOptions,
    private readonly timing: SharingTiming,
    private readonly log: Logger,
    sizeBytes: number,
    allocationUnit: number,
  ) {
    this.description = fileOptions.path;
    this.sizeBytes = sizeBytes;
    this.allocationUnit = allocationUnit;
    this.view = new ClusterView(state);
    this.media = new OwnedFile(fileOptions.path, (err) => this.fence(err));
  }

  /**
   * Join the servers of a LUN file: owner when its lock is free, else standby. Refuses (throws,
   * code EBUSY) when another server of the same node name is already serving it — the same
   * program started twice, or two configurations on one host naming the same file.
   */
  static async open(state: LunStateDir, node: SharingNode, fileOptions: FileBackendOptions, log: Logger, timing = DEFAULT_TIMING): Promise<SharedLun> {
    let owned: FileBackend | null = null;
    try {
      owned = await FileBackend.open(fileOptions);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    }
    if (owned?.created === true) log.info({ path: fileOptions.path, sizeBytes: owned.sizeBytes }, 'LUN file created');
    // Only the first open may create the file: a standby never recreates one that disappeared.
    const { create: _create, ...existingFile } = fileOptions;
    try {
      await state.ensure();
      await refuseSameNode(state, node.name, timing.pollMs, owned === null);
      const st = await fs.promises.stat(fileOptions.path);
      const size = owned?.sizeBytes ?? Math.floor(st.size / fileOptions.blockSize) * fileOptions.blockSize;
      if (size === 0) throw Object.assign(new Error(`${fileOptions.path} is smaller than one block`), { code: 'EINVAL' });
      const lun = new SharedLun(state, node, existingFile, timing, log, size, owned?.allocationUnit ?? fileOptions.blockSize);
      if (owned !== null) {
        await lun.becomeOwner(owned, 'none');
        owned = null;
      }
      await lun.publish();
      return lun;
    } finally {
      await owned?.close();
    }
  }

  /** Whether any other server of this file is running (a heartbeat of another node changes within two polls). */
  async othersAlive(): Promise<boolean> {
    await this.view.refresh();
    return this.view.heartbeatChanges((n) => n !== this.node.name, 2 * this.timing.pollMs + 200, this.timing.pollMs / 4);
  }

  /** Connect the logical unit and start the protocol. */
  attach(unit: SharedUnit): void {
    this.unit = unit;
    unit.setAccessState(this.role === 'owner' ? 'active/optimized' : 'standby');
    this.lastStates = new Map(this.groups().map((g) => [g.id, g.state]));
    this.schedule();
  }

  get isOwner(): boolean {
    return this.role === 'owner';
  }

  /** The node serving the LUN's I/O as this server last saw it: itself, or a peer with a fresh heartbeat; undefined while none does. */
  get ownerNode(): string | undefined {
    if (this.role === 'owner') return this.node.name;
    return this.view.peers().find((p) => p.beat.role === 'owner' && p.age < this.timing.staleMs)?.beat.node;
  }

  /**
   * Poll every pollMs. A poll still waiting for the volume (a hung mount answers nothing, not
   * even an error) is not started again, but the owner's proof of ownership still ages.
   */
  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.fenceIfUnproven(undefined);
      if (!this.polling) {
        this.polling = true;
        this.ticking = this.tick()
          .catch((err: unknown) => this.log.warn({ err, path: this.description }, 'LUN sharing: poll failed'))
          .finally(() => { this.polling = false; });
      }
      this.schedule();
    }, this.timing.pollMs);
    this.timer.unref();
  }

  /**
   * An owner whose heartbeat the volume has refused for half the staleness time, or has not
   * answered for that long, cannot show it still owns the LU: it stops serving (and says so in
   * REPORT TARGET PORT GROUPS) before the others may take over (staleMs).
   */
  private fenceIfUnproven(err: unknown): void {
    if (this.role !== 'owner' || this.fenced) return;
    const limit = this.timing.staleMs / 2;
    const failing = err !== undefined && Date.now() - this.lastProof > limit;
    const hanging = this.provingSince !== null && Date.now() - this.provingSince > limit;
    if (failing || hanging) this.fence(err);
  }

  private fence(err: unknown): void {
    if (this.role !== 'owner' || this.fenced) return;
    this.log.error({ err, path: this.description }, 'LUN sharing: volume unreachable; not serving media commands until it answers');
    this.fenced = true;
    this.media.suspect();
    this.unit?.setAccessState('transitioning');
    this.noticeStateChanges();
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    this.provingSince = Date.now();
    try {
      await this.view.refresh();
      await this.publish();
      if (this.role === 'owner' && await this.media.deadForGood()) await this.dropDeadFile();
      this.lastProof = Date.now();
      this.fenced = false;
    } catch (err) {
      this.fenceIfUnproven(err);
      throw err;
    } finally {
      this.provingSince = null;
    }
    const version = await this.unit?.refreshReservations();
    if (version !== undefined) this.prVersion = version;
    if (this.role === 'owner') await this.ownerTick();
    else if (this.role === 'standby') await this.standbyTick();
    this.noticeStateChanges();
  }

  /**
   * Report a change in the access state of any group, as RTPG shows it, to the LU's nexuses. A
   * group seen for the first time (a node joining) is not a change of state.
   */
  private noticeStateChanges(): void {
    const now = new Map(this.groups().map((g) => [g.id, g.state]));
    const changed = [...now].some(([id, state]) => this.lastStates.has(id) && this.lastStates.get(id) !== state);
    this.lastStates = now;
    if (changed) this.unit?.accessStatesChanged();
  }

  private async ownerTick(): Promise<void> {
    const record = await this.state.readJson<OwnerRecord>('owner.json');
    if (record !== undefined && (record.epoch > this.epoch || (record.epoch === this.epoch && record.node !== this.node.name))) {
      // Someone else holds a newer epoch: this server lost the lock without noticing. Stop now.
      this.log.error({ path: this.description, epoch: this.epoch, newer: record }, 'LUN sharing: another node owns the LUN; stopping at once');
      await this.stepDown('implicit', false);
      return;
    }
    this.unit?.setAccessState('active/optimized');
    const h = this.view.handover();
    if (h === undefined || h.request.to === this.node.name || h.age > this.timing.handoverMs) return;
    const idle = Date.now() - this.media.lastMediaIo;
    if (h.request.reason === 'explicit' || idle >= this.timing.idleMs) {
      this.log.info({ path: this.description, to: h.request.to, reason: h.request.reason, idleMs: idle }, 'LUN sharing: handing over');
      await this.stepDown(h.request.reason === 'explicit' ? 'explicit' : 'implicit', true);
    }
  }

  private async standbyTick(): Promise<void> {
    const h = this.view.handover();
    const reservedForOther = h !== undefined && h.request.to !== this.node.name && h.age < this.timing.handoverMs
      && this.view.peer(h.request.to) !== undefined && this.view.peer(h.request.to)!.age < this.timing.staleMs;
    if (reservedForOther) return;
    let file: FileBackend;
    try {
      file = await FileBackend.open(this.fileOptions);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') return; // the owner is alive
      throw err;
    }
    const status = h !== undefined && h.request.to === this.node.name ? (h.request.reason === 'explicit' ? 'explicit' : 'implicit') : 'implicit';
    await this.becomeOwner(file, status);
    if (h !== undefined && h.request.to === this.node.name) await this.state.remove('handover.json').catch(() => undefined);
  }

  /**
   * The owned file's descriptor is dead for good (the mount was remounted: a new gluster client;
   * or strict locks kept the client from reopening it), and the lock went with it: this node
   * steps down, and as a standby opens the file afresh and takes the LU again unless another node
   * has — no restart needed.
   */
  private async dropDeadFile(): Promise<void> {
    this.log.warn({ path: this.description }, 'LUN sharing: the LUN file\'s descriptor is dead (its gluster client is gone, or did not reopen it); opening the file again');
    await this.stepDown('implicit', false);
  }

  /** The lock is ours: record a new epoch, load what others committed, serve. */
  private async becomeOwner(file: FileBackend, status: TpgStatus): Promise<void> {
    try {
      const record = await this.state.readJson<OwnerRecord>('owner.json').catch(() => undefined);
      this.epoch = (record?.epoch ?? 0) + 1;
      await this.state.writeJson('owner.json', { node: this.node.name, epoch: this.epoch } satisfies OwnerRecord, true);
      if (this.unit !== undefined) this.prVersion = await this.unit.refreshReservations();
    } catch (err) {
      await file.close().catch(() => undefined); // the lock goes back: another node may own the LU
      throw err;
    }
    // The file may have grown while another node owned it: serve its size (never less than ours).
    if (file.sizeBytes > this.sizeBytes) {
      this.log.info({ path: this.description, from: this.sizeBytes, to: file.sizeBytes }, 'LUN sharing: the LUN file grew');
      this.sizeBytes = file.sizeBytes;
      this.unit?.capacityChanged?.();
    }
    // Role and access state change together: a command waiting in awaitAccess sees both or neither.
    this.media.serve(file, this.epoch);
    this.role = 'owner';
    this.lastStatus = status;
    this.unit?.setAccessState('active/optimized');
    // Taken over from another node: not handed back before idleMs (no ping-pong). Owned since
    // start-up and never used: idle from the start, so an initiator without multipath that reached
    // another node first is served there (implicit transition) right away.
    this.media.lastMediaIo = status === 'none' ? 0 : Date.now();
    this.log.info({ path: this.description, node: this.node.name, epoch: this.epoch }, 'LUN sharing: this node owns the LUN (active/optimized)');
    await this.publish().catch(() => undefined);
  }

  /**
   * Stop serving: new media commands answer "transitioning", those running finish, the file is
   * flushed (with `flush`) and closed, which releases the lock for the next owner.
   */
  private async stepDown(status: TpgStatus, flush: boolean): Promise<void> {
    this.role = 'releasing';
    this.unit?.setAccessState('transitioning');
    await this.unit?.quiesce();
    const file = this.media.release(this.epoch);
    try {
      if (flush) await file?.flush();
    } catch (err) {
      this.log.error({ err, path: this.description }, 'LUN sharing: flush before handover failed');
    } finally {
      await file?.close().catch(() => undefined);
    }
    this.role = 'standby';
    this.lastStatus = status;
    this.unit?.setAccessState('standby');
    await this.publish().catch(() => undefined);
  }

  /**
   * Publish the heartbeat. A full volume refuses it (ENOSPC) but answers: the owner shows by its
   * locked descriptor answering that it still holds the lock (no other node can take a held lock)
   * and keeps serving — reads GOOD, writes DATA PROTECT 27h/07h — rather than fencing.
   */
  private async publish(): Promise<void> {
    const beat: Heartbeat = {
      node: this.node.name, pid: process.pid, seq: ++this.seq, group: this.node.group, relativePortIds: this.node.relativePortIds,
      role: this.role === 'releasing' ? 'transitioning' : this.role, epoch: this.role === 'owner' ? this.epoch : 0,
      idleMs: Date.now() - this.media.lastMediaIo, prVersion: this.prVersion,
    };
    try {
      await this.state.writeJson(`node-${this.node.name}.json`, beat);
      this.volumeFull = false;
    } catch (err) {
      if (!isOutOfSpace(err)) throw err;
      if (!this.volumeFull) this.log.warn({ err, path: this.description }, 'LUN sharing: the volume is full; no heartbeat until there is room, the owner proves its lock by its descriptor');
      this.volumeFull = true;
      if (this.role === 'owner') await this.media.probe();
    }
  }

  /** Resolves when `peer` has been seen to enforce persistent reservations version `version`, or after `ms`. */
  async peersSawReservations(version: number, ms = 3000): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until && !this.closed) {
      const owner = this.view.peers().find((p) => p.beat.role === 'owner' && p.age < this.timing.staleMs);
      if (this.role === 'owner' || owner === undefined || owner.beat.prVersion >= version) return;
      await new Promise((r) => setTimeout(r, this.timing.pollMs / 4));
      await this.view.refresh();
    }
  }

  // ── AluaCoordinator ────────────────────────────────────────────────────────────────────────

  groups(): readonly TargetPortGroupInfo[] {
    const byGroup = new Map<number, TargetPortGroupInfo>();
    for (const p of this.view.peers()) {
      if (p.beat.node === this.node.name) continue;
      const alive = p.age < this.timing.staleMs;
      const state: AluaState = !alive ? 'unavailable' : p.beat.role === 'owner' ? 'active/optimized' : p.beat.role === 'transitioning' ? 'transitioning' : 'standby';
      byGroup.set(p.beat.group, { id: p.beat.group, state, relativePortIds: p.beat.relativePortIds, status: 'none' });
    }
    const mine: AluaState = this.role === 'owner' && !this.fenced ? 'active/optimized' : this.role === 'standby' ? 'standby' : 'transitioning';
    byGroup.set(this.node.group, { id: this.node.group, state: mine, relativePortIds: this.node.relativePortIds, status: this.lastStatus });
    return [...byGroup.values()].sort((a, b) => a.id - b.id);
  }

  async activate(groupId: number, _issuer: ItNexus): Promise<ScsiResponse | undefined> {
    const target = groupId === this.node.group ? this.node.name : this.view.peers().find((p) => p.beat.group === groupId)?.beat.node;
    if (target === undefined) return setTargetPortGroupsFailed();
    if (target === this.node.name && this.role === 'owner') return undefined;
    await this.requestHandover(target, 'explicit');
    const until = Date.now() + this.timing.handoverMs;
    while (Date.now() < until && !this.closed) {
      await new Promise((r) => setTimeout(r, this.timing.pollMs / 4));
      if (target === this.node.name ? this.role === 'owner' : this.view.peer(target)?.beat.role === 'owner') return undefined;
    }
    return setTargetPortGroupsFailed();
  }

  /**
   * A media command arrived here while standby. The LU moves here only when its owner is gone or
   * has been idle for `idleMs` — never away from an owner serving I/O (no ping-pong between
   * paths): the command waits, at most `handoverMs`, for that and for the handover.
   */
  async awaitAccess(task?: AbortWatch): Promise<void> {
    const until = Date.now() + this.timing.handoverMs;
    while (!this.closed && this.role !== 'owner' && Date.now() < until && task?.aborted !== true) {
      if (this.role === 'standby' && this.mayTakeOver()) {
        const h = this.view.handover();
        if (h === undefined || h.request.to !== this.node.name || h.age >= this.timing.handoverMs) {
          await this.requestHandover(this.node.name, 'implicit').catch((err: unknown) => this.log.warn({ err }, 'LUN sharing: handover request failed'));
        }
      }
      await new Promise((r) => setTimeout(r, this.timing.pollMs / 4));
      await this.view.refresh().catch(() => undefined);
    }
  }

  /** Whether the owner is gone or has been idle long enough to hand the LU over implicitly. */
  private mayTakeOver(): boolean {
    const owner = this.view.peers().find((p) => p.beat.role === 'owner' && p.age < this.timing.staleMs);
    return owner === undefined || owner.beat.idleMs + owner.age >= this.timing.idleMs;
  }

  private async requestHandover(to: string, reason: HandoverRequest['reason']): Promise<void> {
    const request: HandoverRequest = { to, reason, id: randomUUID() };
    this.view.noteHandover(request);
    await this.state.writeJson('handover.json', request);
  }

  // ── BlockBackend: media commands go to the owned file ────────────────────────────────────────

  read(buf: Buffer, offset: number): Promise<void> {
    return this.media.read(buf, offset);
  }

  write(data: Buffer | readonly Buffer[], offset: number, durable: boolean): Promise<void> {
    return this.media.write(data, offset, durable);
  }

  flush(): Promise<void> {
    return this.media.flush();
  }

  punchHole(offset: number, length: number, durable: boolean): Promise<void> {
    return this.media.punchHole(offset, length, durable);
  }

  mapStatus(offset: number, length: number): Promise<BackendExtent> {
    return this.media.mapStatus(offset, length);
  }

  /**
   * Grow the LU to `sizeBytes`. The owner extends the file now; a standby takes the new size
   * when the file already has it (its owner grew it), and otherwise on its next takeover, which
   * opens the file at least this large (becomeOwner reads the size again).
   */
  async grow(sizeBytes: number): Promise<void> {
    this.fileOptions = { ...this.fileOptions, sizeBytes };
    if (await this.media.grow(sizeBytes)) {
      this.sizeBytes = sizeBytes;
      return;
    }
    const st = await fs.promises.stat(this.description);
    if (st.size >= sizeBytes) this.sizeBytes = sizeBytes;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    // A poll stuck on a hung mount is not waited for beyond the staleness time.
    await Promise.race([this.ticking.catch(() => undefined), new Promise((r) => setTimeout(r, this.timing.staleMs).unref())]);
    await this.media.release(this.epoch)?.close();
    await this.state.remove(`node-${this.node.name}.json`).catch(() => undefined);
  }
}
