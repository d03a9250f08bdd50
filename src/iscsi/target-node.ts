import type { AclEntry, TargetDefinition } from '../config/types.js';
import { findAclEntry } from '../auth/acl.js';
import type { ScsiDevice } from '../scsi/scsi-device.js';

/** One configured iSCSI target: its name, its logical units and who may log in. */
export class TargetNode {
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
}
