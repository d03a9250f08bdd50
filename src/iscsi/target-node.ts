import type { AclEntry, TargetDefinition } from '../config/types.js';
import { findAclEntry } from '../auth/acl.js';
import type { ScsiDevice } from '../scsi/scsi-device.js';
import { LunIoStats } from './io-stats.js';

/** One configured iSCSI target: its name, its logical units and who may log in. */
export class TargetNode {
  /** Commands per LUN since the server started (only LUNs that exist: an initiator cannot add series). */
  private readonly io = new Map<number, LunIoStats>();

  constructor(
    public definition: TargetDefinition,
    readonly device: ScsiDevice,
  ) {}

  get iqn(): string {
    return this.definition.iqn;
  }

  aclEntry(initiatorName: string): AclEntry | undefined {
    return findAclEntry(this.definition.acl, initiatorName);
  }

  /** The I/O statistics of a LUN of this target; undefined when the device has no such LUN. */
  ioStats(lun: number): LunIoStats | undefined {
    let stats = this.io.get(lun);
    if (stats === undefined && this.device.hasLun(lun)) this.io.set(lun, (stats = new LunIoStats()));
    return stats;
  }
}
