// Several servers sharing one LUN file, on real files with real flocks (each SharedLun opens the
// file itself, so two in one process contend for the lock as two processes would): who owns it,
// failover when the owner goes, explicit and implicit handover, fencing of an owner that lost
// the lock, and the identity stored with the file.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { settleIdentity } from '../../src/cluster/lun-identity.js';
import { SharedLun, type SharedUnit, type SharingTiming } from '../../src/cluster/shared-lun.js';
import { LunStateDir } from '../../src/cluster/state-dir.js';
import type { AluaState } from '../../src/scsi/alua.js';
import { nexus } from './scsi-helpers.js';

const TIMING: SharingTiming = { pollMs: 40, staleMs: 400, idleMs: 250, handoverMs: 1500 };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

let dir: string;
let path: string;
const open: SharedLun[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'glfs-shared-'));
  path = join(dir, 'lun.img');
  writeFileSync(path, Buffer.alloc(1 << 20));
});
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((l) => l.close()));
  rmSync(dir, { recursive: true, force: true });
});

class Unit implements SharedUnit {
  state: AluaState = 'standby';
  changes = 0;
  setAccessState(s: AluaState): void { this.state = s; }
  quiesce(): Promise<void> { return Promise.resolve(); }
  refreshReservations(): Promise<number> { return Promise.resolve(0); }
  accessStatesChanged(): void { this.changes++; }
  capacityChanges = 0;
  capacityChanged(): void { this.capacityChanges++; }
}

async function join_(name: string, group: number): Promise<{ lun: SharedLun; unit: Unit }> {
  const lun = await SharedLun.open(new LunStateDir(path), { name, group, relativePortIds: [group] }, { path, readOnly: false, blockSize: 512 }, log, TIMING);
  open.push(lun);
  const unit = new Unit();
  lun.attach(unit);
  return { lun, unit };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const stateOf = (l: SharedLun) => l.groups().map((g) => [g.id, g.state]);

describe('one LUN file served by several servers', () => {
  it('the first server owns it, the next is standby, and both report the same groups', async () => {
    const a = await join_('node-a', 1);
    const b = await join_('node-b', 2);
    expect(a.lun.isOwner).toBe(true);
    expect(b.lun.isOwner).toBe(false);
    expect(a.unit.state).toBe('active/optimized');
    expect(b.unit.state).toBe('standby');
    await until(() => JSON.stringify(stateOf(a.lun)) === JSON.stringify(stateOf(b.lun)) && stateOf(a.lun).length === 2);
    expect(stateOf(b.lun)).toEqual([[1, 'active/optimized'], [2, 'standby']]);
    // A standby serves no media command, even if asked directly.
    await expect(b.lun.read(Buffer.alloc(512), 0)).rejects.toThrow(/does not own/);
  });

  it('when the owner goes, a standby takes over with a new epoch and sees what the owner wrote', async () => {
    const a = await join_('node-a', 1);
    const b = await join_('node-b', 2);
    await a.lun.write(Buffer.alloc(512, 0x5a), 4096, true);
    await a.lun.close(); // as if its process ended: the lock is released
    await until(() => b.lun.isOwner);
    expect(b.unit.state).toBe('active/optimized');
    const buf = Buffer.alloc(512);
    await b.lun.read(buf, 4096);
    expect(buf.every((x) => x === 0x5a)).toBe(true);
    expect(await new LunStateDir(path).readJson('owner.json')).toEqual({ node: 'node-b', epoch: 2 });
    await until(() => b.unit.changes > 0); // the groups' states changed: 2Ah/06h to its nexuses
  });

  it('SET TARGET PORT GROUPS through a standby moves ownership there; the old owner flushes and stands by', async () => {
    const a = await join_('node-a', 1);
    const b = await join_('node-b', 2);
    await until(() => stateOf(b.lun).length === 2);
    await a.lun.write(Buffer.alloc(512, 0x11), 0, false);
    expect(await b.lun.activate(2, nexus())).toBeUndefined();
    expect(b.lun.isOwner).toBe(true);
    await until(() => a.unit.state === 'standby');
    expect(a.lun.isOwner).toBe(false);
    const buf = Buffer.alloc(512);
    await b.lun.read(buf, 0);
    expect(buf[0]).toBe(0x11);
  });

  it('media commands at a standby move the LU only once the owner has been idle (no ping-pong)', async () => {
    const a = await join_('node-a', 1);
    const b = await join_('node-b', 2);
    await until(() => stateOf(b.lun).length === 2);
    // The owner is busy: a command waiting at the standby gets nothing moved, and is let go
    // (to be answered "standby") after handoverMs.
    let busy = true;
    const load = (async () => { while (busy) { await a.lun.read(Buffer.alloc(512), 0).catch(() => undefined); await new Promise((r) => setTimeout(r, 20)); } })();
    const t0 = Date.now();
    await b.lun.awaitAccess();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(TIMING.handoverMs - 50);
    expect(a.lun.isOwner).toBe(true);
    expect(b.lun.isOwner).toBe(false);
    busy = false;
    await load;
    // The owner goes idle: the waiting command gets the LU once idleMs have passed.
    const t1 = Date.now();
    await b.lun.awaitAccess();
    expect(b.lun.isOwner).toBe(true);
    expect(Date.now() - t1).toBeLessThan(TIMING.handoverMs);
    await until(() => !a.lun.isOwner);
  });

  it('an owner that finds a newer epoch recorded stops serving at once (it lost the lock unnoticed)', async () => {
    const a = await join_('node-a', 1);
    await new LunStateDir(path).writeJson('owner.json', { node: 'node-z', epoch: 99 });
    await until(() => !a.lun.isOwner);
    expect(a.unit.state).not.toBe('active/optimized');
    await expect(a.lun.write(Buffer.alloc(512), 0, false)).rejects.toThrow(/does not own/);
  });
});

describe('the identity stored with the LUN file', () => {
  it('is adopted once, then read back whatever is proposed later', async () => {
    const state = new LunStateDir(path);
    await state.ensure();
    const first = await settleIdentity(state, { serial: 'SER1', naa: '6026c66d0000000000000000000000a1' });
    expect(first).toEqual({ identity: { serial: 'SER1', naa: '6026c66d0000000000000000000000a1' }, origin: 'adopted' });
    const again = await settleIdentity(state, { serial: 'OTHER', naa: '6026c66d0000000000000000000000ff' });
    expect(again).toEqual({ identity: first.identity, origin: 'stored' });
  });

  it('two different files proposed the same identity never share it', async () => {
    const other = join(dir, 'other.img');
    writeFileSync(other, Buffer.alloc(1 << 20));
    const proposed = { serial: 'SAME', naa: '6026c66d0000000000000000000000a1' };
    const s1 = new LunStateDir(path);
    const s2 = new LunStateDir(other);
    await s1.ensure();
    await s2.ensure();
    const one = await settleIdentity(s1, proposed);
    const two = await settleIdentity(s2, proposed);
    expect(one.origin).toBe('adopted');
    expect(two.origin).toBe('fresh');
    expect(two.identity.naa).not.toBe(one.identity.naa);
    expect(two.identity.serial).not.toBe(one.identity.serial);
    expect(two.identity.naa).toMatch(/^6[0-9a-f]{31}$/);
  });
});

describe('growing a shared LUN (reload)', () => {
  const MiB = 1 << 20;

  it('the owner grows the file; a standby takes the size once the file has it', async () => {
    const a = await join_('node-a', 1);
    const b = await join_('node-b', 2);
    await b.lun.grow(2 * MiB); // reloaded before the owner: the file is still 1 MiB
    expect(b.lun.sizeBytes).toBe(MiB);
    await a.lun.grow(2 * MiB);
    expect(a.lun.sizeBytes).toBe(2 * MiB);
    expect(statSync(path).size).toBe(2 * MiB);
    await a.lun.write(Buffer.alloc(512, 0x77), 2 * MiB - 512, true);
    await b.lun.grow(2 * MiB);
    expect(b.lun.sizeBytes).toBe(2 * MiB);
  });

  it('a standby that was not reloaded reads the grown size at its takeover and tells its unit', async () => {
    const a = await join_('node-a', 1);
    const b = await join_('node-b', 2);
    await a.lun.grow(3 * MiB);
    await a.lun.close();
    await until(() => b.lun.isOwner);
    expect(b.lun.sizeBytes).toBe(3 * MiB);
    expect(b.unit.capacityChanges).toBe(1);
  });

  it('a standby reloaded before an owner that never grew the file grows it at its takeover', async () => {
    const a = await join_('node-a', 1);
    const b = await join_('node-b', 2);
    await b.lun.grow(2 * MiB);
    await a.lun.close();
    await until(() => b.lun.isOwner);
    expect(statSync(path).size).toBe(2 * MiB);
    expect(b.lun.sizeBytes).toBe(2 * MiB);
    expect(b.unit.capacityChanges).toBe(1);
  });
});
