import type { ChapConfig } from './chap.js';

/**
 * The effective configuration after validation and defaulting: what every other module reads.
 * The JSON file format (a superset with shorthands such as "0.0.0.0:3260" and "8G") is parsed
 * into this shape by config/load.ts (fields: config/schema.ts; building it: config/derive.ts).
 */
export interface EffectiveConfig {
  portals: PortalConfig[];
  targets: TargetDefinition[];
  iscsi: IscsiSettings;
  /** Directory for files the server creates itself (the embedded default's LUN file). */
  dataDir: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** Unix socket for `glfs-target status` (absolute path). */
  controlSocket: string;
  /** HTTP listener for /metrics, /healthz and /readyz; absent = none. */
  metrics?: { host: string; port: number };
  /** Discovery sessions: CHAP when `chap` is set, otherwise open. Absent = open. */
  discovery?: DiscoveryConfig;
}

export interface DiscoveryConfig {
  chap?: ChapConfig;
}

export interface PortalConfig {
  /** Listen address (IPv4/IPv6 literal or hostname). */
  host: string;
  port: number;
  /** Target portal group tag reported as ",tpgt" in TargetAddress and in login (TargetPortalGroupTag). */
  tpgt: number;
  /** Address:port announced in SendTargets instead of the address the initiator connected to (NAT). */
  advertise?: string;
}

export interface TargetDefinition {
  iqn: string;
  alias?: string;
  luns: LunDefinition[];
  acl: AclEntry[];
}

export interface LunDefinition {
  lun: number;
  path: string;
  /** Size in bytes when the file must be created (or grown); undefined = use the file's size. */
  sizeBytes?: number;
  /** Create the file when it does not exist (an explicit act: a missing file is otherwise refused). */
  create: boolean;
  /** Gluster volume the file must be on (served only from a fuse.glusterfs mount of it). */
  volume?: string;
  readOnly: boolean;
  /** Logical block size: 512 or 4096. */
  blockSize: number;
  /** Write-back cache reported in the caching mode page (WCE). false = every write is durable before status. */
  writeCache: boolean;
  /** VPD 0x80 unit serial number. */
  serial: string;
  /** VPD 0x83 NAA IEEE Registered Extended designator, 32 hex digits starting with '6'. */
  naa: string;
  vendor: string;
  product: string;
  revision: string;
}

export interface AclEntry {
  /** Initiator IQN/EUI, or "*" for any initiator. */
  initiator: string;
  readOnly: boolean;
  /** CHAP required from this initiator (secrets are read by config/chap.ts resolveChapSecrets). */
  chap?: ChapConfig;
}

export interface IscsiSettings {
  /** Command window depth: MaxCmdSN - ExpCmdSN + 1 (≥ 1). */
  cmdWindow: number;
  /** Largest data segment the target accepts (declared MaxRecvDataSegmentLength). */
  maxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  maxOutstandingR2T: number;
  immediateData: boolean;
  initialR2T: boolean;
  /** Digests the target accepts, in preference order. */
  headerDigest: Array<'CRC32C' | 'None'>;
  dataDigest: Array<'CRC32C' | 'None'>;
  /** Seconds a connection may stay in the login phase. */
  loginTimeout: number;
  /** Seconds of idleness before the target sends a NOP-In ping (0 = never). */
  nopInInterval: number;
  /** Seconds to wait for the NOP-Out answer before dropping the connection. */
  nopInTimeout: number;
  /** Most connections allowed in the login phase at once. */
  maxPendingLogins: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  /** Most connections from one source address in the login phase at once (default 16). */
  maxPendingLoginsPerAddress?: number;
  /**
   * CHAP back-off per initiator name and source address: from this many wrong CHAP responses on
   * (0 = never; default 5), a refusal is answered after authBackoffInitial seconds, doubling with
   * each further failure up to authBackoffMax (and 5 s). Correct logins never wait.
   */
  authBackoffAfter?: number;
  authBackoffInitial?: number;
  authBackoffMax?: number;
  /**
   * Bytes of command data all connections together may hold in memory (read buffers not yet
   * sent, write data not yet in the file) before they stop reading from their sockets (default
   * 64 MiB).
   */
  maxDataInFlight?: number;
  /**
   * Seconds a LUN's storage has to answer one call (read, write, flush) before the command fails
   * with NOT READY / LOGICAL UNIT COMMUNICATION TIME-OUT (default 43, gluster-block's io-timeout).
   */
  backendTimeout?: number;
  /** Calls of one LUN in libuv's thread pool at once: what a hung mount can hold (default 32). */
  backendCallsPerLun?: number;
  /**
   * Microseconds the event loop keeps polling after a PDU was received or sent, instead of
   * sleeping until the next one (adaptive, see src/iscsi/busy-poll.ts; default 100, 0 = off).
   */
  busyPollMicroseconds?: number;
}
