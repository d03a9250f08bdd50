/**
 * Runtime changes while initiators are logged in: QEMU's iSCSI driver (qemu-io) and the in-repo
 * TestInitiator hold sessions on LUN 0 of a target, another initiator one on a second target.
 * The config file is rewritten and `glfs-target reload` (and SIGHUP) applied: LUN 1 added, LUN 0
 * grown, LUN 2 removed, a target added and one removed. The sessions go on without an error; the
 * unit attentions, REPORT LUNS and READ CAPACITY are what SPC-4 and SBC-3 say; the session on
 * the other target notices nothing; libiscsi's tools see the new LUNs and size; a shrink is
 * refused with the old configuration kept.
 */
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { flock } from '../../src/backend/atomic-file.js';
import { TestInitiator } from '../support/test-initiator.js';
import { GLFS_BIN, QemuIoSession, describeRun, prereqs, qemuIoOk, run, sleep, startGlfsTarget, tempDir, type RunResult, type TargetHandle } from './harness.js';

const pre = prereqs({ tools: ['qemu-io', 'iscsi-ls', 'iscsi-readcapacity16'], server: true });
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIBISCSI_')));
const MiB = 2 ** 20;
const IQN_A = 'iqn.2016-06.org.gluster:reload-a';
const IQN_B = 'iqn.2016-06.org.gluster:reload-b';
const IQN_C = 'iqn.2016-06.org.gluster:reload-c';
const INIT_A = 'iqn.2007-10.com.example:reload-a';
const INIT_B = 'iqn.2007-10.com.example:reload-b';

/** Sense key / ASC / ASCQ of fixed-format sense data, as "6/2a/09". */
const senseCode = (s: Buffer) => `${(s[2]! & 0x0f).toString(16)}/${s[12]!.toString(16).padStart(2, '0')}/${s[13]!.toString(16).padStart(2, '0')}`;
const CAPACITY_DATA_HAS_CHANGED = '6/2a/09'; // SBC-3
const REPORTED_LUNS_DATA_HAS_CHANGED = '6/3f/0e'; // SPC-4 §6.33
const LOGICAL_UNIT_NOT_SUPPORTED = '5/25/00'; // SPC-4 §6.33 / SAM-5

/** Run one command without data-out on `lun`; the response (status, data, sense). */
async function command(ini: TestInitiator, cdb: Buffer, lun: number, edtl: number) {
  const itt = ini.itt;
  await ini.sendPdu(ini.commandHeader(cdb, { read: edtl > 0, edtl, lun }));
  return ini.collect(itt);
}
const testUnitReady = (ini: TestInitiator, lun: number) => command(ini, Buffer.alloc(6), lun, 0);
const reportLuns = async (ini: TestInitiator) => {
  const cdb = Buffer.alloc(12);
  cdb[0] = 0xa0;
  cdb.writeUInt32BE(4096, 6);
  return command(ini, cdb, 0, 4096);
};
/** The LUN numbers of REPORT LUNS parameter data (single level, peripheral addressing). */
const lunList = (data: Buffer) => Array.from({ length: data.readUInt32BE(0) / 8 }, (_, i) => data.readUInt16BE(8 + i * 8) & 0x3fff);
const readCapacity16 = (ini: TestInitiator, lun: number) => {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x9e;
  cdb[1] = 0x10;
  cdb.writeUInt32BE(32, 10);
  return command(ini, cdb, lun, 32);
};
/** Capacity in bytes from READ CAPACITY (16) data: (last LBA + 1) × block length. */
const capacity = (data: Buffer) => (Number(data.readBigUInt64BE(0)) + 1) * data.readUInt32BE(8);

/** The unit attentions a TEST UNIT READY on `lun` reports, in order, until it is GOOD. */
async function unitAttentions(ini: TestInitiator, lun: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 8; i++) {
    const r = await testUnitReady(ini, lun);
    if (r.status === 0) return seen;
    seen.push(senseCode(r.sense!));
  }
  throw new Error(`unit attentions do not clear: ${seen.join(', ')}`);
}

describe.skipIf(pre.skip)('reload: targets and LUNs change under running sessions', () => {
  let t: TargetHandle;
  let tmp: ReturnType<typeof tempDir>;
  let qemu: QemuIoSession | undefined;
  let a: TestInitiator | undefined;
  let b: TestInitiator | undefined;
  const lunFile = (name: string) => join(tmp.dir, name);
  const lun = (n: number, file: string, size: string) => ({ lun: n, path: lunFile(file), size, create: true });
  const targetA = (luns: unknown[]) => ({ iqn: IQN_A, luns, acl: [{ initiator: '*' }] });
  const targetB = () => ({ iqn: IQN_B, luns: [lun(0, 'b0.img', '16M')], acl: [{ initiator: '*' }] });
  const targetC = () => ({ iqn: IQN_C, luns: [lun(0, 'c0.img', '16M')], acl: [{ initiator: '*' }] });

  /** Rewrite the targets of the running server's config file. */
  function writeTargets(targets: unknown[]): void {
    const config = JSON.parse(readFileSync(t.configPath!, 'utf8')) as Record<string, unknown>;
    writeFileSync(t.configPath!, JSON.stringify({ ...config, targets }, null, 2));
  }
  const reload = (json = true): Promise<RunResult> => run(process.execPath, [GLFS_BIN, 'reload', '--config', t.configPath!, ...(json ? ['--json'] : [])], { timeout: 60_000 });
  const libiscsi = (tool: string, ...args: string[]) => run(tool, ['-i', INIT_B, ...args], { timeout: 20_000, env: ENV });

  beforeAll(async () => {
    pre.assert();
    tmp = tempDir('glfs-reload-');
    t = await startGlfsTarget({ extra: { targets: [targetA([lun(0, 'a0.img', '64M'), lun(2, 'a2.img', '16M')]), targetB()] } });
    qemu = await QemuIoSession.open(`iscsi://127.0.0.1:${t.port}/${IQN_A}/0?initiator-name=${INIT_A}`);
    a = await TestInitiator.connect(t.port);
    expect((await a.login({ initiatorName: 'iqn.2007-10.com.example:reload-a2', targetName: IQN_A })).status).toBe(0);
    await a.clearUnitAttentions();
    await unitAttentions(a, 2); // the power-on condition of LUN 2, consumed as an initiator's scan does
    b = await TestInitiator.connect(t.port);
    expect((await b.login({ initiatorName: INIT_B, targetName: IQN_B })).status).toBe(0);
    await b.clearUnitAttentions();
  }, 60_000);

  afterAll(async () => {
    await qemu?.close();
    a?.close();
    b?.close();
    await t?.stop();
    tmp?.cleanup();
  });

  test('add LUN 1, grow LUN 0, remove LUN 2 and add a target: sessions carry on and are told', async () => {
    expect(qemuIoOk(await qemu!.cmd('write -P 0x5a 0 1M'), 'wrote', MiB, 0)).toBe(true);
    const lun2Heartbeats = () => readdirSync(`${lunFile('a2.img')}.glfs-target`).filter((f) => /^node-.*\.json$/.test(f));
    expect(lun2Heartbeats()).toHaveLength(1);

    writeTargets([targetA([lun(0, 'a0.img', '96M'), lun(1, 'a1.img', '32M')]), targetB(), targetC()]);
    const r = await reload();
    expect(r.code, describeRun(r)).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      changed: [`added target ${IQN_C}`, `LUN 0 of ${IQN_A} grew to ${96 * MiB} bytes`, `added LUN 1 to ${IQN_A}`, `removed LUN 2 from ${IQN_A}`],
      needRestart: [],
    });

    // The file grew; the removed LUN's file is closed: its lock and heartbeat are gone.
    expect(statSync(lunFile('a0.img')).size).toBe(96 * MiB);
    expect(statSync(lunFile('a1.img')).size).toBe(32 * MiB);
    const removed = await open(lunFile('a2.img'), 'r+');
    try {
      await flock(removed.fd, 'exnb');
    } finally {
      await removed.close();
    }
    expect(lun2Heartbeats()).toEqual([]);

    // The session on LUN 0 learns both changes, capacity first (it happened first), then goes on.
    expect(await unitAttentions(a!, 0)).toEqual([CAPACITY_DATA_HAS_CHANGED, REPORTED_LUNS_DATA_HAS_CHANGED]);
    const cap = await readCapacity16(a!, 0);
    expect(cap.status).toBe(0);
    expect(capacity(cap.data)).toBe(96 * MiB);
    const luns = await reportLuns(a!);
    expect(luns.status).toBe(0);
    expect(lunList(luns.data)).toEqual([0, 1]);
    const gone = await testUnitReady(a!, 2);
    expect(gone.status).toBe(2);
    expect(senseCode(gone.sense!)).toBe(LOGICAL_UNIT_NOT_SUPPORTED);
    // The new LU starts as any LU does for a nexus: power-on, then ready.
    expect(await unitAttentions(a!, 1)).toEqual(['6/29/00']);
    expect(capacity((await readCapacity16(a!, 1)).data)).toBe(32 * MiB);

    // QEMU's session sees no error: what it wrote is there, and the grown end can be written.
    expect(qemuIoOk(await qemu!.cmd('read -P 0x5a 0 1M'), 'read', MiB, 0)).toBe(true);
    expect(qemuIoOk(await qemu!.cmd('write -P 0x3c 1M 1M'), 'wrote', MiB, MiB)).toBe(true);

    // The other target's session noticed nothing.
    expect(await unitAttentions(b!, 0)).toEqual([]);

    // New logins see the new layout (libiscsi).
    const ls = await libiscsi('iscsi-ls', '-s', `iscsi://127.0.0.1:${t.port}`);
    expect(ls.code, describeRun(ls)).toBe(0);
    expect(ls.stdout).toContain(IQN_C);
    expect([...ls.stdout.matchAll(new RegExp(`${IQN_A}[^]*?(?=Target:|$)`, 'g'))][0]?.[0]).toMatch(/Lun:0[^]*Lun:1/);
    const rc = await libiscsi('iscsi-readcapacity16', `iscsi://127.0.0.1:${t.port}/${IQN_A}/0`);
    expect(rc.code, describeRun(rc)).toBe(0);
    expect(rc.stdout).toMatch(new RegExp(`Total size:${96 * MiB}\\b`));
  }, 120_000);

  test('a shrink is refused with a clear message and the running configuration stays', async () => {
    writeTargets([targetA([lun(0, 'a0.img', '32M'), lun(1, 'a1.img', '32M')]), targetB()]);
    const r = await reload(false);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`reload failed, keeping the current configuration: LUN 0 of ${IQN_A} \\(.*a0\\.img\\): shrinking from ${96 * MiB} to ${32 * MiB} bytes is refused`));
    expect(statSync(lunFile('a0.img')).size).toBe(96 * MiB);
    expect(await unitAttentions(a!, 0)).toEqual([]);
    // Target C, removed from the file in the same edit, is still served: nothing of the reload happened.
    const ls = await libiscsi('iscsi-ls', `iscsi://127.0.0.1:${t.port}`);
    expect(ls.stdout).toContain(IQN_C);
  }, 60_000);

  test('SIGHUP removes a target: its session ends, the others go on', async () => {
    const c = await TestInitiator.connect(t.port);
    try {
      expect((await c.login({ initiatorName: 'iqn.2007-10.com.example:reload-c', targetName: IQN_C })).status).toBe(0);
      await c.clearUnitAttentions();
      writeTargets([targetA([lun(0, 'a0.img', '96M'), lun(1, 'a1.img', '32M')]), targetB()]);
      process.kill(t.pid()!, 'SIGHUP');
      expect(await c.waitClosed(10_000)).toBe(true);
      for (let i = 0; i < 100 && !t.logs().includes('configuration reloaded'); i++) await sleep(50);
      expect(t.logs()).toContain(`removed target ${IQN_C}`);
      expect(existsSync(lunFile('c0.img'))).toBe(true); // the file stays: removing a target never deletes data
      expect(await unitAttentions(a!, 0)).toEqual([]);
      expect(await unitAttentions(b!, 0)).toEqual([]);
      expect(qemuIoOk(await qemu!.cmd('read -P 0x3c 1M 1M'), 'read', MiB, MiB)).toBe(true);
    } finally {
      c.close();
    }
  }, 60_000);
});
