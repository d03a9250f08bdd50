import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { LunDefinition, PortalConfig, TargetDefinition } from '../config/types.js';
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
  const opened: SharedUnitOpened[] = [];
  try {
    for (const lun of def.luns) opened.push(await openSharedUnit(def, lun, node, log, callBounds));
  } catch (err) {
    await Promise.allSettled(opened.map((o) => o.shared.close()));
    throw err;
  }
  const device = new ScsiDevice(opened.map((o) => o.unit));
  for (const o of opened) attachSharedUnit(device, o);
  return device;
}

/** A logical unit over a shared LUN file, not yet attached to its device. */
export interface SharedUnitOpened {
  readonly unit: LogicalUnit;
  readonly shared: SharedLun;
}

/** Open one LUN of `def` as openSharedTarget does; the caller adds it to a device, then attaches it. */
export async function openSharedUnit(def: TargetDefinition, lun: LunDefinition, node: SharingNodeConfig, log: Logger, callBounds?: CallBounds): Promise<SharedUnitOpened> {
  await assertOnItsVolume(lun.path, lun.volume);
  const state = new LunStateDir(lun.path);
  const file = { path: lun.path, ...(lun.sizeBytes !== undefined ? { sizeBytes: lun.sizeBytes } : {}), create: lun.create, readOnly: lun.readOnly, blockSize: lun.blockSize };
  const sharedLun = await SharedLun.open(state, { name: node.name, group: node.group, relativePortIds: node.relativePortIds }, file, log, node.timing);
  try {
    const settled = await settleIdentity(state, { serial: lun.serial, naa: lun.naa });
    if (settled.origin === 'fresh') {
      log.warn({ target: def.iqn, lun: lun.lun, path: lun.path, naa: settled.identity.naa }, 'the configured identity belongs to another LUN file; this file got a new one');
    } else if (settled.identity.naa !== lun.naa.toLowerCase() || settled.identity.serial !== lun.serial) {
      log.info({ target: def.iqn, lun: lun.lun, naa: settled.identity.naa, serial: settled.identity.serial }, 'LUN identity stored with the file is used');
    }
    const reservationStore = new SharedReservationStore(state, (version) => sharedLun.peersSawReservations(version));
    // A state that cannot be read is not dropped: the logical unit's own load fails on it and the
    // LU answers NOT READY until an operator repairs it (docs/architecture.md).
    const dropped = sharedLun.isOwner && !(await sharedLun.othersAlive())
      && (await reservationStore.dropUnlessPersistent().catch((err: unknown) => {
        log.error({ err, target: def.iqn, lun: lun.lun }, 'persistent reservation state unreadable; not cleared');
        return false;
      }));
    if (dropped) {
      log.info({ target: def.iqn, lun: lun.lun }, 'no node was serving this LUN: persistent reservations made without APTPL are cleared (power loss, SPC-4 §5.13.2)');
    }
    const unit = new LogicalUnit({
      lun: lun.lun, backend: sharedLun, blockSize: lun.blockSize, readOnly: lun.readOnly, writeCache: lun.writeCache,
      serial: settled.identity.serial, naa: settled.identity.naa, vendor: lun.vendor, product: lun.product, revision: lun.revision,
      targetName: def.iqn, alua: sharedLun, reservationStore, ...(callBounds !== undefined ? { callBounds } : {}),
    });
    log.info({
      target: def.iqn, lun: lun.lun, path: lun.path, sizeBytes: sharedLun.sizeBytes, readOnly: lun.readOnly, writeCache: lun.writeCache,
      node: node.name, group: node.group, role: sharedLun.isOwner ? 'owner' : 'standby',
    }, 'LUN online');
    return { unit, shared: sharedLun };
  } catch (err) {
    await sharedLun.close().catch(() => undefined);
    throw err;
  }
}

/** Let the shared LUN drive its logical unit in `device`: access states, quiescing, reservations, capacity. */
export function attachSharedUnit(device: ScsiDevice, { unit: lu, shared }: SharedUnitOpened): void {
  shared.attach({
    setAccessState: (s) => lu.setAccessState(s),
    quiesce: () => device.quiesce(lu.lun),
    accessStatesChanged: () => lu.reportAccessStateChange(),
    refreshReservations: async () => {
      await lu.reservations.refresh();
      return lu.reservations.version;
    },
    capacityChanged: () => lu.capacityChanged(),
  });
}
