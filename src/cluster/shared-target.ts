import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { PortalConfig, TargetDefinition } from '../config/types.js';
import type { CallBounds } from '../backend/bounded-backend.js';
import { LogicalUnit } from '../scsi/logical-unit.js';
import { ScsiDevice } from '../scsi/scsi-device.js';
import { nodeIndex } from './cluster-view.js';
import { settleIdentity } from './lun-identity.js';
import { SharedLun, type SharingTiming } from './shared-lun.js';
import { SharedReservationStore } from './shared-reservation-store.js';
import { LunStateDir } from './state-dir.js';
import { assertOnItsVolume } from './volume-options.js';

/** This server as one of the nodes that may share LUN files. */
export interface SharingNodeConfig {
  /** Node name: unique per node serving the same files. */
  readonly name: string;
  /** Target port group (ALUA) of this server's ports: its node number. */
  readonly group: number;
  /** Relative target port ids (the effective TPGTs) of this server's portals. */
  readonly relativePortIds: readonly number[];
  readonly timing?: SharingTiming;
}

/** The node name: `GLFS_TARGET_NODE` when set, else the host name. */
export function defaultNodeName(): string {
  return process.env['GLFS_TARGET_NODE'] || hostname();
}

/**
 * The node number of `name` among the servers sharing the LUN files of the first LUN's directory
 * (1 when there is no LUN file). It becomes this server's target port group.
 */
export async function nodeGroup(targets: readonly TargetDefinition[], name: string): Promise<number> {
  // The first LUN that will be served: one whose file exists (on its volume), or that may be created.
  for (const lun of targets.flatMap((t) => t.luns)) {
    const usable = await assertOnItsVolume(lun.path, lun.volume).then(() => true, () => false)
      && (lun.create || (await stat(lun.path).then(() => true, () => false)));
    if (usable) return nodeIndex(new LunStateDir(lun.path), name).catch(() => 1); // opening the LUN reports what is wrong
  }
  return 1;
}

/**
 * TPGTs of this node's portals (RFC 7143 §4.2.7.1: one target port per portal group): the
 * configured ones on node 1, shifted by 256 per node after it, so two nodes serving one target
 * name never present the same target port (when every configured TPGT is below 256).
 */
export function nodePortals(portals: readonly PortalConfig[], group: number): PortalConfig[] {
  const shift = portals.every((p) => p.tpgt < 256) ? (group - 1) * 256 : 0;
  return portals.map((p) => ({ ...p, tpgt: p.tpgt + shift }));
}

/**
 * Open a target's LUN files as shared LUNs: each joins the servers of its file (owner or
 * standby), takes the identity stored with the file, keeps persistent reservations in the
 * file's state directory, and runs its target port groups. Closes what it opened on failure.
 * `callBounds` bound every backend call of its logical units (bounded-backend.ts).
 */
export async function openSharedTarget(def: TargetDefinition, node: SharingNodeConfig, log: Logger, callBounds?: CallBounds): Promise<ScsiDevice> {
  const units: LogicalUnit[] = [];
  const shared: SharedLun[] = [];
  try {
    for (const lun of def.luns) {
      await assertOnItsVolume(lun.path, lun.volume);
      const state = new LunStateDir(lun.path);
      const file = { path: lun.path, ...(lun.sizeBytes !== undefined ? { sizeBytes: lun.sizeBytes } : {}), create: lun.create, readOnly: lun.readOnly, blockSize: lun.blockSize };
      const sharedLun = await SharedLun.open(state, { name: node.name, group: node.group, relativePortIds: node.relativePortIds }, file, log, node.timing);
      shared.push(sharedLun);
      const settled = await settleIdentity(state, { serial: lun.serial, naa: lun.naa });
      if (settled.origin === 'fresh') {
        log.warn({ target: def.iqn, lun: lun.lun, path: lun.path, naa: settled.identity.naa }, 'the configured identity belongs to another LUN file; this file got a new one');
      } else if (settled.identity.naa !== lun.naa.toLowerCase() || settled.identity.serial !== lun.serial) {
        log.info({ target: def.iqn, lun: lun.lun, naa: settled.identity.naa, serial: settled.identity.serial }, 'LUN identity stored with the file is used');
      }
      const reservationStore = new SharedReservationStore(state, (version) => sharedLun.peersSawReservations(version));
      if (sharedLun.isOwner && !(await sharedLun.othersAlive()) && (await reservationStore.dropUnlessPersistent())) {
        log.info({ target: def.iqn, lun: lun.lun }, 'no node was serving this LUN: persistent reservations made without APTPL are cleared (power loss, SPC-4 §5.13.2)');
      }
      units.push(new LogicalUnit({
        lun: lun.lun, backend: sharedLun, blockSize: lun.blockSize, readOnly: lun.readOnly, writeCache: lun.writeCache,
        serial: settled.identity.serial, naa: settled.identity.naa, vendor: lun.vendor, product: lun.product, revision: lun.revision,
        targetName: def.iqn, alua: sharedLun, reservationStore, ...(callBounds !== undefined ? { callBounds } : {}),
      }));
      log.info({
        target: def.iqn, lun: lun.lun, path: lun.path, sizeBytes: sharedLun.sizeBytes, readOnly: lun.readOnly, writeCache: lun.writeCache,
        node: node.name, group: node.group, role: sharedLun.isOwner ? 'owner' : 'standby',
      }, 'LUN online');
    }
  } catch (err) {
    await Promise.allSettled(shared.map((s) => s.close()));
    throw err;
  }
  const device = new ScsiDevice(units);
  units.forEach((lu, i) => shared[i]!.attach({
    setAccessState: (s) => lu.setAccessState(s),
    quiesce: () => device.quiesce(lu.lun),
    accessStatesChanged: () => lu.reportAccessStateChange(),
    refreshReservations: async () => {
      await lu.reservations.refresh();
      return lu.reservations.version;
    },
  }));
  return device;
}
