/**
 * Scenario 3: kubelet's in-tree iscsi volume plugin, command for command, in the VM: a volume
 * with its own initiatorName (cloned iface), discoverydb -o new, --discover, node settings,
 * --login, LUN scan, wait for the by-path device, format+mount with fsType; a readOnly volume on
 * a read-only LUN mounts -o ro and the LUN refuses writes (DATA PROTECT / WRITE PROTECTED).
 * The target's ACL admits only the volumes' initiator name, not the node's default one.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, run, startGlfsTarget, tempDir, which, type TargetHandle } from '../e2e/harness.js';
import { Vm, describeStep, portalIp, recordTiming, vmPrereqs } from './vm.js';
import { byPath, kubeletAttach, kubeletDetach, startIscsid, type KubeAttach, type KubeVolume } from './scenarios.js';

const pre = vmPrereqs(which('mkfs.xfs') ? '' : "tool 'mkfs.xfs' not found (xfsprogs)");
const IQN = 'iqn.2016-06.org.gluster:vm-kube';
const KUBE_INITIATOR = 'iqn.2007-10.com.example:kubelet-node1';
const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe.skipIf(pre.skip)('scenario 3: kubelet iscsi plugin flow (kernel initiator in a VM)', () => {
  let t: TargetHandle;
  let vm: Vm;
  let tmp: ReturnType<typeof tempDir>;
  let roLun: string;
  let roSha = '';
  let portal = '';
  const t0 = Date.now();

  beforeAll(async () => {
    pre.assert();
    tmp = tempDir('vm-s3-');
    // The read-only LUN carries a filesystem already (a readOnly PV is never formatted by kubelet).
    roLun = join(tmp.dir, 'ro.img');
    const fd = openSync(roLun, 'w');
    ftruncateSync(fd, 512 * 1024 * 1024);
    closeSync(fd);
    const mk = await run(which('mkfs.xfs')!, ['-q', '-f', '-L', 'ro-lun', roLun], { timeout: 60_000 });
    expect(mk.code, mk.stderr).toBe(0);
    roSha = sha256(roLun);
    const port = await freePort();
    portal = `${portalIp(0)}:${port}`;
    t = await startGlfsTarget({
      iqn: IQN,
      portals: [{ address: `127.0.0.1:${port}`, advertise: portal }],
      luns: [{ size: '512M' }, { size: '512M', path: roLun, readOnly: true }],
      acl: [{ initiator: KUBE_INITIATOR }],
    });
    vm = await Vm.boot({ name: 's3', portals: [{ port }] });
    // The node's own (default iface) name is NOT in the target's ACL.
    await startIscsid(vm, 'iqn.2007-10.com.example:node-default');
  });

  afterAll(async () => {
    recordTiming('scenario-3', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel });
    await vm?.stop();
    await t?.stop();
    tmp?.cleanup();
  });

  test("the node's default initiator name is refused by the ACL (authorization failure)", async () => {
    const r = await vm.sh(`iscsiadm -m node -o new -T ${IQN} -p ${portal} >/dev/null && iscsiadm -m node -T ${IQN} -p ${portal} --login; rc=$?; iscsiadm -m node -T ${IQN} -p ${portal} -o delete; exit $rc`,
      { timeoutS: 90 });
    // iscsiadm exit 24 = ISCSI_ERR_LOGIN_AUTH_FAILED ("authorization failure").
    expect(r.code, describeStep('login with the default iface', r)).toBe(24);
    expect(r.err).toMatch(/authorization failure/i);
  });

  const rw: Omit<KubeVolume, 'portal'> = { name: 'pv-rw', iqn: IQN, lun: 0, fsType: 'xfs', readOnly: false, initiatorName: KUBE_INITIATOR, podUid: 'pod-a' };
  const ro: Omit<KubeVolume, 'portal'> = { name: 'pv-ro', iqn: IQN, lun: 1, fsType: 'xfs', readOnly: true, initiatorName: KUBE_INITIATOR, podUid: 'pod-b' };
  let rwAttach: KubeAttach;
  let roAttach: KubeAttach;

  test('a read-write volume: attach, format (blank LUN), mount -t xfs, the pod writes and reads', async () => {
    rwAttach = await kubeletAttach(vm, { ...rw, portal });
    expect(rwAttach.device.ro).toBe(0);
    expect(rwAttach.device.size).toBe(512 * 1024 * 1024);
    expect(rwAttach.transcript.map((s) => s.cmd)).toContain(`iscsiadm -m discoverydb -t sendtargets -p ${portal} -I '${portal}:pv-rw' -o new`);
    const w = await vm.sh(`cd '${rwAttach.podPath}' && head -c 3M /dev/urandom > data && sync && sha256sum data > /run/rw.sum && sha256sum -c /run/rw.sum`);
    expect(w.code, describeStep('pod write', w)).toBe(0);
    expect(w.out).toContain('data: OK');
  });

  test('a readOnly volume on a read-only LUN: mounted -o ro, writes refused by the fs and by the LUN', async () => {
    roAttach = await kubeletAttach(vm, { ...ro, portal });
    // The kernel saw the write-protect bit (MODE SENSE WP) and made the disk read-only.
    expect(roAttach.device.ro).toBe(1);
    const fsw = await vm.sh(`ls -la '${roAttach.podPath}' >/dev/null && touch '${roAttach.podPath}/x'`);
    expect(fsw.code).not.toBe(0);
    expect(fsw.err).toMatch(/Read-only file system/);
    // Bypass the block layer: a raw WRITE(10) through the sg node gets DATA PROTECT / WRITE PROTECTED.
    const sg = await vm.sh(`sg=$(ls /sys/block/${roAttach.device.dev.slice(5)}/device/scsi_generic); sg_raw -v -s 512 -i /dev/zero /dev/$sg 2a 00 00 0f ff 00 00 00 01 00`);
    expect(sg.code, describeStep('sg_raw WRITE(10) on the read-only LUN', sg)).not.toBe(0);
    expect(`${sg.out}\n${sg.err}`).toMatch(/Data Protect/i);
    expect(`${sg.out}\n${sg.err}`).toMatch(/Write protected/i);
    // The block layer refuses too.
    const dd = await vm.sh(`dd if=/dev/zero of=${roAttach.device.dev} bs=4096 count=1 oflag=direct`);
    expect(dd.code).not.toBe(0);
  });

  test('detach both volumes as the plugin does; devices and sessions are gone; the read-only LUN is unchanged', async () => {
    await kubeletDetach(vm, { ...rw, portal }, rwAttach);
    await kubeletDetach(vm, { ...ro, portal }, roAttach);
    const s = await vm.sh('iscsiadm -m session');
    // exit 21 = ISCSI_ERR_NO_OBJS_FOUND: no sessions
    expect(s.code, describeStep('sessions', s)).toBe(21);
    const left = await vm.sh(`ls /dev/disk/by-path 2>/dev/null | grep -c iscsi || true`);
    expect(left.out.trim()).toBe('0');
    expect(sha256(roLun)).toBe(roSha);
    expect(byPath(portal, IQN, 1)).toContain(`ip-${portal}-iscsi-${IQN}-lun-1`);
  });
});
