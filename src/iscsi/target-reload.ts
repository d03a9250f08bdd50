/**
 * A configuration reload's changes to targets and LUNs, applied without touching anything that
 * did not change: targets and LUNs are added and removed, LUNs grow, and every other session
 * keeps running as it was. Planned in full first, so that a refused change (a shrink) or a LUN
 * that cannot be opened leaves the running configuration as it was.
 */
import type { Logger } from 'pino';
import type { LunDefinition, TargetDefinition } from '../config/types.js';
import { attachSharedUnit, type SharedUnitOpened } from '../cluster/shared-target.js';
import type { LogicalUnit } from '../scsi/logical-unit.js';
import type { TargetNode } from './target-node.js';

/** What the reload needs of the server. */
export interface ReloadHost {
  readonly log: Logger;
  /** The live targets by lower-case name. */
  readonly targets: Map<string, TargetNode>;
  openTarget(def: TargetDefinition): Promise<TargetNode>;
  openUnit(def: TargetDefinition, lun: LunDefinition): Promise<SharedUnitOpened>;
  closeSessionsOf(target: TargetNode, reason: string): void;
}

/** What a reload did: the changes made, and those that take effect only after a restart. */
export interface ReloadOutcome {
  changed: string[];
  needRestart: string[];
}

/** A reload refused as a whole: the running configuration stays in force. */
export class ReloadRefused extends Error {
  constructor(readonly reasons: string[]) {
    super(reasons.join('; '));
  }
}

interface Growth {
  readonly node: TargetNode;
  readonly unit: LogicalUnit;
  readonly sizeBytes: number;
}

/** The changes to targets and LUNs of one reload, opened (new LUNs, new targets) but not yet in service. */
export class TargetReload {
  /** Changes that still need a restart (LUN settings other than the size). */
  readonly needRestart: string[] = [];
  /** What the log says was done. */
  readonly done: string[] = [];
  /** The definition each target that stays serves after the reload. */
  readonly definitions = new Map<TargetNode, TargetDefinition>();
  private readonly newTargets: Array<[string, TargetNode]> = [];
  private readonly removedTargets: TargetNode[] = [];
  private readonly newUnits: Array<{ node: TargetNode; opened: SharedUnitOpened }> = [];
  private readonly removedLuns: Array<{ node: TargetNode; lun: number }> = [];
  private readonly growths: Growth[] = [];

  private constructor(private readonly host: ReloadHost) {}

  /**
   * Work out what changes from the live targets to `next`, refuse what cannot be done (throws
   * ReloadRefused) and open what is new. Nothing is in service yet: commit() puts it there,
   * abandon() closes it.
   */
  static async prepare(host: ReloadHost, next: readonly TargetDefinition[]): Promise<TargetReload> {
    const reload = new TargetReload(host);
    reload.plan(next);
    try {
      await reload.open(next);
    } catch (err) {
      await reload.abandon();
      throw err;
    }
    return reload;
  }

  private plan(next: readonly TargetDefinition[]): void {
    const refused: string[] = [];
    const nextNames = new Set(next.map((d) => d.iqn.toLowerCase()));
    for (const [name, node] of this.host.targets) if (!nextNames.has(name)) this.removedTargets.push(node);
    for (const def of next) {
      const node = this.host.targets.get(def.iqn.toLowerCase());
      if (node === undefined) continue; // opened by open()
      const luns: LunDefinition[] = [];
      for (const lun of def.luns) {
        const old = node.definition.luns.find((l) => l.lun === lun.lun);
        const unit = node.device.unit(lun.lun);
        if (old === undefined || unit === undefined) {
          luns.push(lun); // added: open() opens it
          continue;
        }
        const { sizeBytes: _oldSize, ...oldRest } = old;
        const { sizeBytes, ...rest } = lun;
        if (JSON.stringify(oldRest) !== JSON.stringify(rest)) {
          this.needRestart.push(`LUN ${lun.lun} of ${def.iqn} (settings other than its size)`);
          luns.push(old);
          continue;
        }
        const current = unit.blocks * unit.blockSize;
        if (sizeBytes !== undefined && sizeBytes < current) {
          refused.push(`LUN ${lun.lun} of ${def.iqn} (${lun.path}): shrinking from ${current} to ${sizeBytes} bytes is refused (it would cut off data); set its "size" to ${current} or more`);
        } else if (sizeBytes !== undefined && sizeBytes > current) {
          if (lun.readOnly) refused.push(`LUN ${lun.lun} of ${def.iqn} (${lun.path}): a read-only LUN cannot grow`);
          else this.growths.push({ node, unit, sizeBytes });
        }
        luns.push(lun);
      }
      for (const old of node.definition.luns) {
        if (!def.luns.some((l) => l.lun === old.lun)) this.removedLuns.push({ node, lun: old.lun });
      }
      this.definitions.set(node, { ...def, luns });
    }
    if (refused.length > 0) throw new ReloadRefused(refused);
  }

  private async open(next: readonly TargetDefinition[]): Promise<void> {
    for (const def of next) {
      const node = this.host.targets.get(def.iqn.toLowerCase());
      if (node === undefined) {
        this.newTargets.push([def.iqn.toLowerCase(), await this.host.openTarget(def)]);
        this.done.push(`added target ${def.iqn}`);
        continue;
      }
      for (const lun of def.luns) {
        if (node.device.hasLun(lun.lun)) continue;
        this.newUnits.push({ node, opened: await this.host.openUnit(def, lun) });
      }
    }
  }

  /** Close what prepare() opened (the reload does not happen). */
  async abandon(): Promise<void> {
    await Promise.allSettled([
      ...this.newTargets.map(([, node]) => node.device.close()),
      ...this.newUnits.map(({ opened }) => opened.shared.close()),
    ]);
  }

  /**
   * Grow the LUNs that grow (the only step here that can fail: then the reload stops there and
   * rejects, with the new targets and LUNs closed again), then put the new targets and LUNs in
   * service, take the removed ones out and close them. Definitions are the caller's to install.
   */
  async commit(): Promise<void> {
    for (const g of this.growths) {
      try {
        await g.unit.grow(g.sizeBytes);
      } catch (err) {
        await this.abandon();
        throw new Error(`LUN ${g.unit.lun} of ${g.node.iqn}: cannot grow to ${g.sizeBytes} bytes: ${(err as Error).message}`, { cause: err });
      }
      this.done.push(`LUN ${g.unit.lun} of ${g.node.iqn} grew to ${g.sizeBytes} bytes`);
    }
    for (const [name, node] of this.newTargets) this.host.targets.set(name, node);
    for (const { node, opened } of this.newUnits) {
      node.device.addUnit(opened.unit);
      attachSharedUnit(node.device, opened);
      this.done.push(`added LUN ${opened.unit.lun} to ${node.iqn}`);
    }
    for (const { node, lun } of this.removedLuns) {
      const unit = await node.device.removeUnit(lun);
      await this.closeUnit(unit, node);
      this.done.push(`removed LUN ${lun} from ${node.iqn}`);
    }
    for (const node of this.removedTargets) {
      this.host.targets.delete(node.iqn.toLowerCase());
      // Its sessions cannot go on without it: they end (logout requested by the connection close).
      this.host.closeSessionsOf(node, 'target removed from the configuration');
      for (const lun of node.device.lunNumbers()) await node.device.quiesce(lun); // their commands end before the files close
      await node.device.close().catch((err: unknown) => this.host.log.error({ err, target: node.iqn }, 'closing the LUNs of a removed target failed'));
      this.done.push(`removed target ${node.iqn}`);
    }
  }

  /** Flush and close a removed LU's storage: for a shared LUN, its file lock and heartbeat go too. */
  private async closeUnit(unit: LogicalUnit | undefined, node: TargetNode): Promise<void> {
    if (unit === undefined) return;
    try {
      await unit.backend.flush();
    } catch (err) {
      this.host.log.error({ err, target: node.iqn, lun: unit.lun }, 'flushing a removed LUN failed');
    }
    await unit.backend.close().catch((err: unknown) => this.host.log.error({ err, target: node.iqn, lun: unit.lun }, 'closing a removed LUN failed'));
  }
}
