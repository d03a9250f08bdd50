/**
 * glfs-target serving a LUN file from a FUSE-mounted gluster replica-3 volume (three bricks on
 * this host), to the kernel initiator in the VM:
 *  - scenario 1 (discovery ... mkfs.xfs ... logout/login ... checksums) with the LUN on the volume;
 *  - a second server pointed at the same file is refused (the LUN file lock);
 *  - a brick is SIGKILLed mid-write: I/O continues and fio verifies every block;
 *  - the brick restarts, `gluster volume heal` runs, and all three bricks hold identical bytes,
 *    equal to the file seen through the mount.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, sleep, startGlfsTarget, type TargetHandle } from '../e2e/harness.js';
import { Vm, describeStep, portalIp, recordTiming, vmPrereqs } from '../vm/vm.js';
import { byPath, discover, login, parseFio, waitDevice, xfsLifecycle } from '../vm/scenarios.js';
import { GlusterVolume, glusterMissing } from './gluster.js';

const pre = vmPrereqs(glusterMissing());
const IQN = 'iqn.2016-06.org.gluster:vm-gluster';
const MiB = 1024 * 1024;

function sha256File(p: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(p).on('data', (d) => h.update(d)).on('end', () => res(h.digest('hex'))).on('error', rej);
  });
}

describe.skipIf(pre.skip)('gluster replica-3: LUN file on a FUSE-mounted volume', () => {
  let vol: GlusterVolume;
  let t: TargetHandle;
  let vm: Vm;
  let lunFile = '';
  let portal = '';
  const t0 = Date.now();

  beforeAll(async () => {
    pre.assert();
    const g0 = Date.now();
    vol = await GlusterVolume.create();
    recordTiming('gluster-volume-up', Date.now() - g0);
    lunFile = join(vol.mount, 'app-store.img');
    const port = await freePort();
    portal = `${portalIp(0)}:${port}`;
    t = await startGlfsTarget({
      iqn: IQN,
      portals: [{ address: `127.0.0.1:${port}`, advertise: portal }],
      luns: [{ size: '512M', path: lunFile }],
      startTimeoutMs: 30_000,
    });
    vm = await Vm.boot({ name: 'gluster', portals: [{ port }] });
  });

  afterAll(async () => {
    recordTiming('gluster-suite', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel });
    await vm?.stop();
    await t?.stop();
    await vol?.stop();
  });

  test('the LUN file lives on the replica-3 volume (created by glfs-target, present on all three bricks)', async () => {
    expect(statSync(lunFile).size).toBe(512 * MiB);
    for (const b of vol.bricks) expect(statSync(join(b, 'app-store.img')).size).toBe(512 * MiB);
    const info = await vol.cli('volume', 'info', vol.name);
    expect(info.stdout).toMatch(/Type: Replicate/);
    expect(info.stdout).toMatch(/Number of Bricks: 1 x 3 = 3/);
  });

  test('scenario 1 on the gluster-backed LUN', async () => {
    await xfsLifecycle(vm, { iqn: IQN, portal, initiator: 'iqn.2007-10.com.example:vm-gluster', files: 16 });
  });

  test('a second server pointed at the same file is refused (the LUN file is locked)', async () => {
    let err = '';
    try {
      const second = await startGlfsTarget({ iqn: `${IQN}-2`, luns: [{ size: '512M', path: lunFile }], startTimeoutMs: 20_000 });
      await second.stop();
    } catch (e) {
      err = (e as Error).message;
    }
    expect(err, 'the second server must not start').not.toBe('');
    expect(err).toMatch(/lock|in use|EWOULDBLOCK|EAGAIN/i);
    // The first server is unaffected.
    const r = await vm.sh(`iscsiadm -m discovery -t sendtargets -p ${portal}`);
    expect(r.code, describeStep('discovery after the refused second server', r)).toBe(0);
  });

  test('a brick killed mid-write: I/O continues and every block verifies', async () => {
    await login(vm, IQN, portal).catch(async () => {
      await discover(vm, portal, IQN);
      await login(vm, IQN, portal);
    });
    const dev = (await waitDevice(vm, byPath(portal, IQN), 512 * MiB)).dev;
    const fio = ['fio', '--name=brick', `--filename=${dev}`, '--direct=1', '--ioengine=libaio', '--rw=randwrite', '--bs=4k',
      '--iodepth=16', '--size=16M', '--offset=256M', '--fsync=64', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1',
      '--randseed=33', '--output-format=json', '--output=/run/fiob.json'].join(' ');
    expect((await vm.sh(`setsid ${fio} >/run/fiob.log 2>&1 </dev/null & echo ok`)).code).toBe(0);
    await sleep(5000);
    const still = await vm.sh('pidof fio');
    expect(still.code, 'fio still running when the brick dies').toBe(0);
    const pid = await vol.killBrick(1);
    expect(pid).toBeGreaterThan(0);
    const st = await vol.brickStatus();
    expect(st.filter((b) => b.online)).toHaveLength(2);

    const done = await vm.sh('for i in $(seq 1 1200); do pidof fio >/dev/null || exit 0; sleep 0.5; done; exit 1', { timeoutS: 700 });
    expect(done.code).toBe(0);
    const out = await vm.sh('cat /run/fiob.json; cat /run/fiob.log >&2');
    const f = parseFio(out.out, out.err, 0);
    expect(f.error, `${out.err}\n${out.out.slice(0, 3000)}`).toBe(0);
    expect(f.writeBytes).toBe(16 * MiB);
    expect(f.readBytes).toBe(16 * MiB);
    const k = await vm.sh('dmesg');
    expect(k.out).not.toMatch(/I\/O error|Buffer I\/O error|critical medium error/);
    const lo = await vm.sh(`iscsiadm -m node -T ${IQN} -p ${portal} --logout`, { timeoutS: 90 });
    expect(lo.code, describeStep('logout', lo)).toBe(0);
  });

  test('after the brick restarts and heals, all three bricks hold identical bytes', async () => {
    // Close the file first so nothing changes while we compare.
    await t.kill('SIGTERM');
    expect(t.lastExit(), t.logs()).toEqual({ code: 0, signal: null });
    const h0 = Date.now();
    await vol.restartBricksAndHeal();
    let pending = -1;
    for (let i = 0; i < 240; i++) {
      pending = await vol.pendingHeals();
      if (pending === 0) break;
      await sleep(1000);
      if (i % 20 === 19) await vol.cli('volume', 'heal', vol.name);
    }
    expect(pending, 'heal info: entries left').toBe(0);
    recordTiming('gluster-heal', Date.now() - h0);
    const sums = await Promise.all([lunFile, ...vol.bricks.map((b) => join(b, 'app-store.img'))].map(sha256File));
    expect(new Set(sums).size, `mount + bricks: ${sums.join(' ')}`).toBe(1);
  });
});
