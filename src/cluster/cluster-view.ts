import fs from 'node:fs';
import { join } from 'node:path';
import { replaceFile } from '../backend/atomic-file.js';
import type { LunStateDir } from './state-dir.js';

/** What each server serving a LUN file publishes about itself, every poll (`node-<name>.json`). */
export interface Heartbeat {
  readonly node: string;
  readonly pid: number;
  /** Bumped on every write: readers judge freshness by when they saw it change (no clock sync needed). */
  readonly seq: number;
  /** Target port group (ALUA) and relative target port ids of this server's ports. */
  readonly group: number;
  readonly relativePortIds: readonly number[];
  readonly role: 'owner' | 'standby' | 'transitioning';
  /** With role owner: the ownership epoch it holds. */
  readonly epoch: number;
  /** Milliseconds since its last media command when written (implicit handover waits for idleness). */
  readonly idleMs: number;
  /** Persistent reservation version it enforces. */
  readonly prVersion: number;
}

/** Who owns the LUN: written by a server right after it took the LUN file's lock (`owner.json`). */
export interface OwnerRecord {
  readonly node: string;
  readonly epoch: number;
}

/** A request that ownership move to `to` (`handover.json`): explicit (SET TARGET PORT GROUPS) or implicit. */
export interface HandoverRequest {
  readonly to: string;
  readonly reason: 'explicit' | 'implicit';
  readonly id: string;
}

/** A heartbeat as seen from here: `age` is local time since it last changed. */
export interface PeerState {
  readonly beat: Heartbeat;
  readonly age: number;
}

/**
 * This server's picture of the others serving the same LUN file, read from their heartbeats.
 * Freshness uses only the local clock: a heartbeat is as old as the time since its `seq` last
 * changed here, so node clocks need not agree.
 */
export class ClusterView {
  private readonly seen = new Map<string, { seq: number; at: number; beat: Heartbeat }>();
  private handoverSeen: { id: string; at: number; request: HandoverRequest } | undefined;

  constructor(private readonly state: LunStateDir) {}

  async refresh(): Promise<void> {
    const now = Date.now();
    for (const name of await this.state.list('node-')) {
      if (!name.endsWith('.json')) continue;
      const beat = await this.state.readJson<Heartbeat>(name).catch(() => undefined);
      if (beat === undefined || typeof beat.node !== 'string' || typeof beat.seq !== 'number') continue;
      const prev = this.seen.get(beat.node);
      if (prev === undefined || prev.seq !== beat.seq) this.seen.set(beat.node, { seq: beat.seq, at: now, beat });
    }
    const request = await this.state.readJson<HandoverRequest>('handover.json').catch(() => undefined);
    if (request === undefined || typeof request.id !== 'string') this.handoverSeen = undefined;
    else if (this.handoverSeen?.id !== request.id) this.handoverSeen = { id: request.id, at: now, request };
  }

  /**
   * Whether the heartbeat of a node that `which` accepts changes within `ms` (its server is
   * running), reading every `everyMs`. A heartbeat that appears counts as a change.
   */
  async heartbeatChanges(which: (node: string) => boolean, ms: number, everyMs: number): Promise<boolean> {
    const before = new Map(this.peers().map((p) => [p.beat.node, p.beat.seq]));
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, everyMs));
      await this.refresh();
      if (this.peers().some((p) => which(p.beat.node) && before.get(p.beat.node) !== p.beat.seq)) return true;
    }
    return false;
  }

  peers(): PeerState[] {
    const now = Date.now();
    return [...this.seen.values()].map((s) => ({ beat: s.beat, age: now - s.at }));
  }

  peer(node: string): PeerState | undefined {
    const s = this.seen.get(node);
    return s === undefined ? undefined : { beat: s.beat, age: Date.now() - s.at };
  }

  /** The pending handover request and how long it has been seen here. */
  handover(): { request: HandoverRequest; age: number } | undefined {
    const h = this.handoverSeen;
    return h === undefined ? undefined : { request: h.request, age: Date.now() - h.at };
  }

  /** Forget a handover request this server just acted on or wrote (it is seen afresh when rewritten). */
  noteHandover(request: HandoverRequest): void {
    this.handoverSeen = { id: request.id, at: Date.now(), request };
  }
}

/**
 * Node numbers of the servers sharing the LUN files of one directory (`.glfs-target-nodes.json`
 * there): assigned on first start, kept for good, so each node's target port group and TPGTs stay
 * the same across restarts (initiators record them).
 */
export async function nodeIndex(state: LunStateDir, node: string): Promise<number> {
  const file = join(state.lunDirectory, '.glfs-target-nodes.json');
  const lock = await fs.promises.open(`${file}.lock`, 'a', 0o644);
  try {
    await state.lockFd(lock.fd);
    let nodes: string[] = [];
    try {
      const parsed = JSON.parse(await fs.promises.readFile(file, 'utf8')) as { nodes?: unknown };
      if (Array.isArray(parsed.nodes)) nodes = parsed.nodes.filter((n): n is string => typeof n === 'string');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: unreadable node registry`, { cause: err });
    }
    let i = nodes.indexOf(node);
    if (i < 0) {
      nodes.push(node);
      i = nodes.length - 1;
      await replaceFile(file, Buffer.from(JSON.stringify({ version: 1, nodes }, null, 2) + '\n'), true);
    }
    return i + 1;
  } finally {
    await lock.close();
  }
}

/**
 * EBUSY when a live server with the node name `node` (another process) already serves the file:
 * its heartbeat is there and still changing. When the lock is held and no heartbeat is there yet,
 * the holder may just have started: wait a few polls for it first.
 */
export async function refuseSameNode(state: LunStateDir, node: string, pollMs: number, lockHeld: boolean): Promise<void> {
  const view = new ClusterView(state);
  const until = Date.now() + (lockHeld ? 4 * pollMs : 0);
  await view.refresh();
  while (view.peers().length === 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, pollMs / 4));
    await view.refresh();
  }
  const mine = view.peer(node);
  if (mine === undefined || mine.beat.pid === process.pid) return;
  if (await view.heartbeatChanges((n) => n === node, 2 * pollMs + 200, pollMs / 4)) {
    throw Object.assign(new Error(`${state.lunPath} is in use: already served by this node (${node}, pid ${mine.beat.pid}); a node serves a LUN file once`), { code: 'EBUSY' });
  }
}
