/**
 * What `glfs-target status` shows: a snapshot of a running server — its targets and LUNs, its
 * sessions and its counters — read through the server's read-only views. The JSON form is
 * documented in docs/operating.md and only grows: fields are added, never renamed or removed,
 * and `format` changes if that ever has to be broken.
 */
import { SharedLun } from '../cluster/shared-lun.js';
import type { IoCounters, LunIoStats } from '../iscsi/io-stats.js';
import type { IscsiServer } from '../iscsi/server.js';
import type { TargetNode } from '../iscsi/target-node.js';
import type { AluaState } from '../scsi/alua.js';

export const STATUS_FORMAT = 1;

export interface ServerStatus {
  format: typeof STATUS_FORMAT;
  server: {
    version: string;
    pid: number;
    /** Node name among the servers sharing LUN files ($GLFS_TARGET_NODE or the host name). */
    node: string;
    /** ALUA target port group of this server's ports (its node number). */
    group: number;
    startedAt: string;
    uptimeSeconds: number;
    configFile: string | null;
    portals: Array<{ address: string; tpgt: number }>;
  };
  targets: TargetStatus[];
  sessions: SessionStatus[];
  counters: {
    /** Sessions established since start, by session type. */
    logins: { normal: number; discovery: number };
    /** Logins refused since start, by reason. */
    loginRefusals: Record<string, number>;
    /** Command data held in memory (iscsi.maxDataInFlight). */
    dataInFlight: { bytes: number; limitBytes: number; peakBytes: number };
  };
}

export interface TargetStatus {
  iqn: string;
  alias: string | null;
  luns: LunStatus[];
  acl: Array<{ initiator: string; readOnly: boolean; chap: boolean }>;
}

export interface LunStatus {
  lun: number;
  path: string;
  sizeBytes: number;
  blockSize: number;
  readOnly: boolean;
  /** The WCE bit now in force (MODE SELECT may have changed the configured value). */
  writeCache: boolean;
  /** Serving: persisted state usable and this node's path active or standby (not transitioning or unavailable). */
  online: boolean;
  /** The node serving the LUN's I/O, or null while none does. */
  owner: string | null;
  alua: { state: AluaState; group: number; groups: Array<{ id: number; state: AluaState }> };
  io: Record<'read' | 'write' | 'other', IoStatus>;
}

export interface IoStatus {
  commands: number;
  bytes: number;
  failed: number;
  /** Failed commands by reason: the sense key ("unit-attention", "medium-error", …) or the status. */
  failures: Record<string, number>;
  /** Mean latency in seconds (0 when no command). */
  meanLatencySeconds: number;
}

export interface SessionStatus {
  tsih: number;
  type: 'Normal' | 'Discovery';
  /** Null for a discovery session. */
  target: string | null;
  initiator: string;
  initiatorAlias: string | null;
  /** Initiator Session ID, 12 hex digits. */
  isid: string;
  /** The initiator's address:port. */
  remote: string;
  /** The address:port it connected to, and its portal group. */
  portal: string;
  tpgt: number;
  authentication: 'none' | 'chap' | 'mutual-chap';
  readOnly: boolean;
  headerDigest: 'None' | 'CRC32C';
  dataDigest: 'None' | 'CRC32C';
  maxBurstLength: number;
  firstBurstLength: number;
  /** MaxRecvDataSegmentLength each side declared: what the target sends at most, and receives at most. */
  initiatorMaxRecvDataSegmentLength: number;
  targetMaxRecvDataSegmentLength: number;
  immediateData: boolean;
  initialR2T: boolean;
  startedAt: string;
  ageSeconds: number;
  commandsInFlight: number;
}

/** Where the snapshot comes from: the server and what `serve` knows about it. */
export interface StatusSource {
  readonly server: IscsiServer;
  readonly version: string;
  readonly startedAt: Date;
  readonly configFile: string | null;
}

const ONLINE_STATES: ReadonlySet<AluaState> = new Set(['active/optimized', 'active/non-optimized', 'standby']);

export async function serverStatus(source: StatusSource): Promise<ServerStatus> {
  const { server } = source;
  const now = Date.now();
  const targets = await Promise.all(server.targetNodes().map((t) => targetStatus(t, server.node)));
  const sessions = server.liveSessions().map(({ session: s, connection: c }): SessionStatus => ({
    tsih: s.tsih,
    type: s.type,
    target: s.target?.iqn ?? null,
    initiator: s.initiatorName,
    initiatorAlias: s.initiatorAlias ?? null,
    isid: s.isid,
    remote: c.remote,
    portal: c.local,
    tpgt: c.portal.tpgt,
    authentication: s.authentication,
    readOnly: s.readOnly,
    headerDigest: s.params.headerDigest ? 'CRC32C' : 'None',
    dataDigest: s.params.dataDigest ? 'CRC32C' : 'None',
    maxBurstLength: s.params.maxBurstLength,
    firstBurstLength: s.params.firstBurstLength,
    initiatorMaxRecvDataSegmentLength: s.params.initiatorMaxRecvDataSegmentLength,
    targetMaxRecvDataSegmentLength: s.params.targetMaxRecvDataSegmentLength,
    immediateData: s.params.immediateData,
    initialR2T: s.params.initialR2T,
    startedAt: new Date(s.startedAt).toISOString(),
    ageSeconds: Math.floor((now - s.startedAt) / 1000),
    commandsInFlight: s.tasks.size,
  }));
  const budget = server.dataBudget;
  return {
    format: STATUS_FORMAT,
    server: {
      version: source.version,
      pid: process.pid,
      node: server.node.name,
      group: server.node.group,
      startedAt: source.startedAt.toISOString(),
      uptimeSeconds: Math.floor((now - source.startedAt.getTime()) / 1000),
      configFile: source.configFile,
      portals: server.listeningPortals(),
    },
    targets,
    sessions,
    counters: {
      logins: { normal: server.logins.succeeded.get('Normal') ?? 0, discovery: server.logins.succeeded.get('Discovery') ?? 0 },
      loginRefusals: Object.fromEntries(server.logins.refused),
      dataInFlight: { bytes: budget.inUse, limitBytes: budget.limit, peakBytes: budget.peak },
    },
  };
}

async function targetStatus(node: TargetNode, self: IscsiServer['node']): Promise<TargetStatus> {
  const def = node.definition;
  const luns: LunStatus[] = [];
  for (const lunDef of def.luns) {
    const lu = node.device.unit(lunDef.lun);
    if (lu === undefined) continue;
    const loaded = await lu.opened().then(() => true, () => false);
    // Every served LUN is a SharedLun (src/cluster/shared-target.ts); another backend serves here when active.
    const owner = lu.backend instanceof SharedLun ? lu.backend.ownerNode : lu.accessState === 'active/optimized' ? self.name : undefined;
    const groups = lu.alua?.groups() ?? [{ id: self.group, state: lu.accessState }];
    luns.push({
      lun: lu.lun,
      path: lunDef.path,
      sizeBytes: lu.blocks * lu.blockSize,
      blockSize: lu.blockSize,
      readOnly: lu.readOnly,
      writeCache: lu.writeCache,
      online: loaded && ONLINE_STATES.has(lu.accessState),
      owner: owner ?? null,
      alua: { state: lu.accessState, group: self.group, groups: groups.map((g) => ({ id: g.id, state: g.state })) },
      io: ioStatus(node.ioStats(lu.lun)),
    });
  }
  return {
    iqn: def.iqn,
    alias: def.alias ?? null,
    luns,
    acl: def.acl.map((a) => ({ initiator: a.initiator, readOnly: a.readOnly, chap: a.chap !== undefined })),
  };
}

function ioStatus(stats: LunIoStats | undefined): LunStatus['io'] {
  const one = (c: IoCounters | undefined): IoStatus => ({
    commands: c?.commands ?? 0,
    bytes: c?.bytes ?? 0,
    failed: c?.failed ?? 0,
    failures: Object.fromEntries(c?.failures ?? []),
    meanLatencySeconds: c !== undefined && c.commands > 0 ? c.seconds / c.commands : 0,
  });
  return { read: one(stats?.read), write: one(stats?.write), other: one(stats?.other) };
}
