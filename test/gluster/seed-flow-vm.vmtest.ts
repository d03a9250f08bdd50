/**
 * The seed document's flow, verbatim, with the kernel initiator: a replica-3 volume on Node1-3,
 * each node exporting `app-store.img` as LUN 0 under its own IQN (`iqn.2016-06.org.gluster:NodeN`,
 * no multipath), CHAP set once in iscsid.conf, `iscsiadm -m discovery -t st -p NodeN -l` against
 * every node, Node2 started first. The host formats the disk it got from Node1 with XFS and
 * writes files; Node1 dies; the disk Node2 serves has the files, byte for byte.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, type TargetHandle, startGlfsTarget } from '../e2e/harness.js';
import { Vm, describeStep, portalIp, recordTiming, vmPrereqs } from '../vm/vm.js';
import { byPath, startIscsid, waitDevice, type DevInfo } from '../vm/scenarios.js';
import { GlusterVolume, glusterMissing } from './gluster.js';

const pre = vmPrereqs(glusterMissing());
const MiB = 1024 * 1024;
const INITIATOR = 'iqn.1994-05.com.redhat:seed-client';
const CHAP = { username: 'seed-user', secret: 'seed-secret-0123' };
/** The seed's IQNs (iSCSI names compare case-insensitively and travel in lower case, RFC 3722). */
const iqnOf = (n: number) => `iqn.2016-06.org.gluster:node${n}`;

describe.skipIf(pre.skip)('the seed\'s flow with the kernel initiator: three IQNs, CHAP from iscsid.conf, discovery -l on each node, Node1 dies', () => {
  let vol: GlusterVolume;
  let vm: Vm;
  const mounts: string[] = [];
  const ports: number[] = [];
  const portals: string[] = [];
  const nodes: Array<TargetHandle | undefined> = [];
  const devs: DevInfo[] = [];
  const t0 = Date.now();

  const start = (i: number) => startGlfsTarget({
    iqn: iqnOf(i + 1),
    portals: [{ address: `127.0.0.1:${ports[i]}`, advertise: portals[i]! }],
    luns: [{ size: '512M', path: join(mounts[i]!, 'app-store.img') }],
    acl: [{ initiator: INITIATOR, chap: CHAP }],
    env: { GLFS_TARGET_NODE: `node${i + 1}` },
    startTimeoutMs: 60_000,
  });

  beforeAll(async () => {
    pre.assert();
    vol = await GlusterVolume.create(`glfs-seed-${process.pid}`);
    mounts.push(...(await vol.nodeMounts(3)));
    for (let i = 0; i < 3; i++) {
      const p = await freePort();
      ports.push(p);
      portals.push(`${portalIp(i)}:${p}`);
    }
    nodes[1] = await start(1); // Node2 first: it owns the file
    nodes[0] = await start(0);
    nodes[2] = await start(2);
    vm = await Vm.boot({ name: 'seed', portals: ports.map((port) => ({ port })) });
    await startIscsid(vm, INITIATOR, {
      'node.session.auth.authmethod': 'CHAP',
      'node.session.auth.username': CHAP.username,
      'node.session.auth.password': CHAP.secret,
    });
  }, 600_000);

  afterAll(async () => {
    recordTiming('seed-flow-vm', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel });
    await vm?.stop();
    for (const n of nodes) await n?.stop().catch(() => undefined);
    await vol?.stop();
  }, 180_000);

  test('discovery -l on each node logs in with the CHAP from iscsid.conf: three disks, one per IQN', async () => {
    for (const p of portals) {
      const r = await vm.sh(`iscsiadm -m discovery -t st -p ${p} -l`, { name: `discovery -l ${p}`, timeoutS: 180 });
      expect(r.code, describeStep(`discovery -l ${p}`, r)).toBe(0);
      expect(r.out).toContain('successful');
    }
    for (let i = 0; i < 3; i++) devs.push(await waitDevice(vm, byPath(portals[i]!, iqnOf(i + 1)), 512 * MiB, 120));
    expect(new Set(devs.map((d) => d.dev)).size).toBe(3);
  }, 600_000);

  test('mkfs.xfs and files through Node1; Node1 dies; Node2\'s disk has the files', async () => {
    const node1 = devs[0]!.dev;
    const node2 = devs[1]!.dev;
    const write = await vm.sh([
      `mkfs.xfs -f ${node1} >/dev/null`, 'mkdir -p /mnt/seed', `mount ${node1} /mnt/seed`,
      'for i in 1 2 3 4 5 6 7 8; do head -c 3M /dev/urandom >/mnt/seed/file$i; done',
      'sync', '(cd /mnt/seed && md5sum file*) >/run/seed.md5', 'cat /run/seed.md5',
    ].join(' && '), { name: 'mkfs + files via Node1', timeoutS: 400 });
    expect(write.code, describeStep('mkfs + files via Node1', write)).toBe(0);
    expect(write.out.trim().split('\n')).toHaveLength(8);
    await nodes[0]!.kill('SIGKILL');
    const killedAt = Date.now();
    // Node1's disk is gone with it: XFS there is detached, and the same file system (same UUID)
    // is mounted through Node2 (an implicit transition), replaying its log.
    const read = await vm.sh([
      // XFS still holds Node1's dead disk: detach it; the same file system (same UUID) through Node2 replays its log.
      'umount -l /mnt/seed', 'mkdir -p /mnt/seed2', `mount -o nouuid ${node2} /mnt/seed2`,
      '(cd /mnt/seed2 && md5sum -c /run/seed.md5)', 'umount /mnt/seed2',
    ].join(' && '), { name: 'files via Node2', timeoutS: 400 });
    expect(read.code, describeStep('files via Node2', read)).toBe(0);
    expect(read.out.match(/: OK/g) ?? []).toHaveLength(8);
    recordTiming('seed-flow-vm-files-via-node2', Date.now() - killedAt);
    const lo = await vm.sh('iscsiadm -m node --logoutall=all', { timeoutS: 120 });
    expect(lo.code, describeStep('logout', lo)).toBe(0);
  }, 900_000);
});
