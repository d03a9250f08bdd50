/**
 * Scenario 1 (the seed's flow) with the Linux kernel initiator (open-iscsi) in the VM:
 * discovery -> login -> /dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-0 appears -> mkfs.xfs ->
 * mount -> write files -> umount -> logout (device gone) -> login -> mount -> checksums verify;
 * then the LUN grows by a reload under the mounted file system, and after a rescan the kernel
 * sees the new size and xfs_growfs uses it.
 *
 * GLFS_S1_LUN_DIR puts the LUN file in that directory (the gluster suite calls the same
 * xfsLifecycle() from scenarios.ts with the LUN on the volume).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startGlfsTarget, type TargetHandle } from '../e2e/harness.js';
import { Vm, describeStep, portalIp, recordTiming, vmPrereqs } from './vm.js';
import { byPath, login, waitDevice, xfsLifecycle } from './scenarios.js';

const MiB = 1024 * 1024;

const pre = vmPrereqs();

describe.skipIf(pre.skip)('scenario 1: discovery, login, mkfs.xfs, files survive logout/login (kernel initiator in a VM)', () => {
  let t: TargetHandle;
  let vm: Vm;
  const t0 = Date.now();

  beforeAll(async () => {
    pre.assert();
    const port = await freePort();
    t = await startGlfsTarget({
      iqn: 'iqn.2016-06.org.gluster:vm-s1',
      portals: [{ address: `127.0.0.1:${port}`, advertise: `${portalIp(0)}:${port}` }],
      luns: [{ size: '512M', ...(process.env.GLFS_S1_LUN_DIR ? { path: join(process.env.GLFS_S1_LUN_DIR, `s1-${port}.img`) } : {}) }],
    });
    vm = await Vm.boot({ name: 's1', portals: [{ port }] });
  });

  afterAll(async () => {
    recordTiming('scenario-1', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel });
    await vm?.stop();
    await t?.stop();
  });

  test('every step of the flow succeeds and the files read back', async () => {
    await xfsLifecycle(vm, { iqn: t.iqn, portal: `${portalIp(0)}:${t.port}`, initiator: 'iqn.2007-10.com.example:vm-s1' });
  });

  test('the backing file on the host holds the XFS filesystem the VM made', async () => {
    const fd = openSync(t.lunPath(0), 'r');
    const b = Buffer.alloc(4);
    try {
      readSync(fd, b, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
    expect(b.toString('latin1')).toBe('XFSB');
  });

  test('the LUN grows under the mounted file system (reload): a rescan shows the new size, xfs_growfs uses it', async () => {
    const portal = `${portalIp(0)}:${t.port}`;
    await login(vm, t.iqn, portal);
    const path = byPath(portal, t.iqn);
    const dev = (await waitDevice(vm, path, 512 * MiB)).dev;
    expect((await vm.sh(`mount ${path} /mnt/s1`, { name: 'mount' })).code).toBe(0);
    // The admin raises the LUN's size in the config and reloads (SIGHUP): no session is dropped.
    const config = JSON.parse(readFileSync(t.configPath!, 'utf8')) as { targets: Array<{ luns: Array<{ size?: string }> }> };
    config.targets[0]!.luns[0]!.size = '768M';
    writeFileSync(t.configPath!, JSON.stringify(config, null, 2));
    process.kill(t.pid()!, 'SIGHUP');
    const grown = await vm.sh([
      'for i in $(seq 1 60); do iscsiadm -m session --rescan >/dev/null;',
      `  [ "$(blockdev --getsize64 ${dev})" = ${768 * MiB} ] && break; sleep 1; done`,
      `blockdev --getsize64 ${dev}`, 'xfs_growfs /mnt/s1 >/dev/null', "df -B1 --output=size /mnt/s1 | tail -1",
    ].join('\n'), { name: 'rescan + xfs_growfs', timeoutS: 120 });
    expect(grown.code, describeStep('rescan + xfs_growfs', grown)).toBe(0);
    const [size, fsSize] = grown.out.trim().split('\n').map((l) => Number(l.trim()));
    expect(size, 'the kernel sees the grown LUN').toBe(768 * MiB);
    expect(fsSize, 'XFS grew into it').toBeGreaterThan(600 * MiB);
    const fin = await vm.sh(`umount /mnt/s1 && iscsiadm -m node -T ${t.iqn} -p ${portal} --logout >/dev/null && echo done`, { name: 'umount + logout', timeoutS: 120 });
    expect(fin.out.trim(), describeStep('umount + logout', fin)).toBe('done');
  }, 300_000);

  test('the guest saw only loopback-relayed connections: no default route, no IPv6', async () => {
    const r = await vm.sh('ip route show; echo ---; ip -6 addr 2>&1; echo ---; ls /proc/sys/net/ipv6 2>&1 | head -1');
    expect(r.code, describeStep('ip route', r)).toBe(0);
    const [routes, v6] = r.out.split('---');
    expect(routes).not.toMatch(/default/);
    expect(routes).toMatch(/10\.0\.2\.0\/24 dev \w+ proto kernel scope link src 10\.0\.2\.15/);
    expect(v6!.trim()).toBe('');
  });
});
