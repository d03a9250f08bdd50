/**
 * The kernel initiator against the seed's topology with one IQN: three glfs-target nodes over
 * three gluster clients of one replica-3 volume, open-iscsi in the VM logged into all three
 * (`discovery -t st -p NodeN` per node), dm-multipath configured as gluster-block recommends
 * (failover groups, prio alua, hardware_handler "1 alua", tur, failback immediate,
 * no_path_retry). Asserts one WWID and one map whose active group is the owner's path, the
 * ALUA device handler attached with the states RTPG reports (1 active/optimized, 2 standby,
 * the same through every path), then fio with crc32c verification on XFS on the map while the
 * owner is SIGKILLed: no I/O error, every block verified; the killed node restarts as standby
 * (RTPG through its own path too); fio again while the owner is SIGSTOPped past the staleness
 * time (it keeps the LU: no second writer) and continued; sg_stpg through a standby path moves
 * the LU there; fio again while the owner's gluster client is killed (a survivor serves; the
 * remounted node rejoins without a restart), and while the owner is cut off from the bricks by a
 * real link cut (it fences; a survivor serves; healed, it is standby); sg_persist registers
 * through one node and reserves through another, and the reservation outlives the owner.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, sleep, startGlfsTarget, type TargetHandle } from '../e2e/harness.js';
import { Vm, describeStep, portalIp, recordTiming, vmPrereqs } from '../vm/vm.js';
import { byPath, discover, parseFio, startIscsid, waitDevice, type DevInfo } from '../vm/scenarios.js';
import { GlusterVolume, glusterMissing } from './gluster.js';

const pre = vmPrereqs(glusterMissing());

const IQN = 'iqn.2016-06.org.gluster:app-store';
const MiB = 1024 * 1024;

interface AluaDisk {
  dev: string;
  inquiry: { tpgs: number };
  rtpg: { ok: boolean; groups?: Array<{ id: number; stateName: string; ports: number[] }> };
  vpd83: { designators: Array<{ assoc: string; typeName: string; value: string; relPort?: number; tpg?: number }> };
  dhState: string;
  accessState: string;
}
interface AluaReport {
  module: boolean;
  disks: AluaDisk[];
  multipath: { maps: Array<{ wwid: string; hwhandler: string; groups: Array<{ prio: number | null; status: string; paths: Array<Record<string, string>> }> }> };
}

describe.skipIf(pre.skip)('multi-node serving to the kernel initiator: ALUA, dm-multipath, owner killed mid-fio', () => {
  let vol: GlusterVolume;
  let vm: Vm;
  const mounts: string[] = [];
  const ports: number[] = [];
  const portals: string[] = [];
  const nodes: Array<TargetHandle | undefined> = [];
  const devs: DevInfo[] = [];
  let wwid = '';
  /** Index of the owning node (node2 started first). */
  let owner = 1;
  const t0 = Date.now();

  const start = (i: number) => startGlfsTarget({
    iqn: IQN,
    portals: [{ address: `127.0.0.1:${ports[i]}`, advertise: portals[i]! }],
    luns: [{ size: '512M', path: join(mounts[i]!, 'app-store.img') }],
    env: { GLFS_TARGET_NODE: `node${i + 1}` },
    logLevel: 'debug', // CHECK CONDITIONs are logged at debug: a failing check shows what each path answered
    startTimeoutMs: 60_000,
  });

  beforeAll(async () => {
    pre.assert();
    vol = await GlusterVolume.create(`glfs-mnvm-${process.pid}`);
    mounts.push(...(await vol.nodeMounts(3)));
    for (let i = 0; i < 3; i++) {
      const p = await freePort();
      ports.push(p);
      portals.push(`${portalIp(i)}:${p}`);
    }
    nodes[1] = await start(1); // node2 first: it owns the LUN
    nodes[0] = await start(0);
    nodes[2] = await start(2);
    vm = await Vm.boot({ name: 'mn-alua', portals: ports.map((port) => ({ port })) });
    // Fail a dead path fast so dm-multipath moves on (the initiator side of a failover).
    await startIscsid(vm, 'iqn.1994-05.com.redhat:vm-multinode', {
      'node.session.timeo.replacement_timeout': 5,
      'node.conn[0].timeo.noop_out_interval': 2,
      'node.conn[0].timeo.noop_out_timeout': 3,
    });
    const conf = await vm.json<{ device: Record<string, string> | null }>('multipath_conf_glfs 120 2', { name: 'multipath.conf (gluster-block)' });
    expect(conf._step.code, describeStep('multipath_conf_glfs', conf._step)).toBe(0);
    expect(conf.device, 'multipath-tools read our device section').not.toBeNull();
  }, 600_000);

  afterAll(async () => {
    recordTiming('multi-node-vm', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel });
    await vm?.stop();
    for (const n of nodes) await n?.stop().catch(() => undefined);
    await vol?.stop();
  }, 180_000);

  test('discovery on each node and login to all three: three disks, one WWID', async () => {
    // As on a multipath host: the ALUA handler and multipathd are there before the first login,
    // so no partition scan reads through a standby path.
    const mp = await vm.sh('modprobe scsi_dh_alua && modprobe dm_multipath && multipathd', { name: 'scsi_dh_alua + multipathd' });
    expect(mp.code, describeStep('scsi_dh_alua + multipathd', mp)).toBe(0);
    for (const p of portals) await discover(vm, p, IQN);
    const r = await vm.sh(`iscsiadm -m node -T ${IQN} --login`, { timeoutS: 180 });
    expect(r.code, describeStep('login all', r)).toBe(0);
    for (const p of portals) devs.push(await waitDevice(vm, byPath(p, IQN), 512 * MiB));
    const ids = await vm.sh(devs.map((d) => `/lib/udev/scsi_id -g -u ${d.dev}`).join('; '));
    const wwids = ids.out.trim().split('\n');
    expect(new Set(wwids).size, ids.out).toBe(1);
    wwid = wwids[0]!;
    expect(wwid).toMatch(/^36[0-9a-f]{31}$/);
  }, 300_000);

  test('ALUA: the device handler is attached, RTPG is the same through every path (1 active/optimized + 2 standby), one map whose active group is the owner', async () => {
    const r = await vm.sh(`for i in $(seq 1 120); do [ -b /dev/mapper/${wwid} ] && [ "$(multipathd show paths format '%d' | grep -c '^sd')" = 3 ] && break; sleep 0.5; done`, { timeoutS: 120 });
    expect(r.code, describeStep('multipathd', r)).toBe(0);
    await sleep(5000); // a few checker rounds: path priorities settle
    const a = await vm.json<AluaReport>('alua_report', { name: 'alua_report', timeoutS: 120 });
    expect(a._step.code, describeStep('alua_report', a._step)).toBe(0);
    expect(a.module).toBe(true);
    expect(a.disks).toHaveLength(3);
    const rtpgs = a.disks.map((d) => JSON.stringify(d.rtpg.groups?.map((g) => [g.id, g.stateName, g.ports])));
    expect(new Set(rtpgs).size, rtpgs.join('\n')).toBe(1);
    const groups = a.disks[0]!.rtpg.groups!;
    expect(groups.map((g) => g.stateName).sort(), JSON.stringify(groups)).toEqual(['active/optimized', 'standby', 'standby']);
    for (const d of a.disks) {
      expect(d.inquiry.tpgs).toBe(3);
      expect(d.dhState, d.dev).toBe('alua');
      const tpg = d.vpd83.designators.find((x) => x.assoc === 'port' && x.typeName === 'tpg')?.tpg;
      const state = groups.find((g) => g.id === tpg)?.stateName;
      expect(d.accessState.replace('-', '/'), `${d.dev}: kernel view vs RTPG`).toBe(state);
    }
    // The map's active path group is the path whose port group is active/optimized, and that is
    // node2's, which started first and owns the LUN.
    const aoDisk = a.disks.find((d) => /active.optimized/.test(d.accessState))!;
    const map = a.multipath.maps.find((m) => m.wwid === wwid)!;
    expect(map.hwhandler).toMatch(/alua/);
    const active = map.groups.find((g) => g.status === 'active');
    expect(active?.paths.map((p) => p.dev), JSON.stringify(map.groups)).toEqual([aoDisk.dev.replace('/dev/', '')]);
    owner = devs.findIndex((d) => d.dev === aoDisk.dev);
    // Explicit ALUA: the host's handler may have moved the LU with SET TARGET PORT GROUPS when
    // multipathd first activated a path group; it must have settled, not ping-ponged.
    const record = JSON.parse(readFileSync(join(mounts[0]!, 'app-store.img.glfs-target', 'owner.json'), 'utf8')) as { node: string; epoch: number };
    expect(record.node).toBe(`node${owner + 1}`);
    expect(record.epoch, 'ownership moves during login and map setup').toBeLessThanOrEqual(3);
    recordTiming('multi-node-vm-owner-after-setup', 0, { node: record.node, epoch: record.epoch });
  }, 300_000);

  /**
   * The node owning the LUN as the volume records it (owner.json), read through the first mount
   * that answers; `avoid`: a node whose mount is cut off (a read there would block).
   */
  const ownerOnVolume = (avoid?: number): number => {
    let lastErr: unknown;
    for (const m of mounts.filter((_, i) => i !== avoid)) {
      try {
        const record = JSON.parse(readFileSync(join(m, 'app-store.img.glfs-target', 'owner.json'), 'utf8')) as { node: string };
        return Number(record.node.replace('node', '')) - 1;
      } catch (err) {
        lastErr = err; // a node whose gluster client was killed answers ENOTCONN
      }
    }
    throw lastErr;
  };

  /** RTPG through each of the three paths shows 1 active/optimized + 2 standby (waits up to a minute for paths to return). */
  async function expectOneOwnerThroughEveryPath(when: string): Promise<void> {
    const want = JSON.stringify(['active/optimized', 'standby', 'standby']);
    let rtpgs: string[] = [];
    for (let i = 0; i < 30; i++) {
      const a = await vm.json<AluaReport>('alua_report', { name: `alua_report (${when})`, timeoutS: 120 });
      rtpgs = a.disks.map((d) => JSON.stringify(d.rtpg.groups?.map((g) => g.stateName).sort() ?? null));
      if (rtpgs.length === 3 && rtpgs.every((r) => r === want)) return;
      await sleep(2000);
    }
    const why = await vm.sh('iscsiadm -m session -P 3 | grep -E "Current Portal|Session State|Attached scsi disk"; lsscsi 2>/dev/null; dmesg | tail -60; echo --- iscsid; tail -40 /run/iscsid.log');
    const answers = nodes.map((n, i) => `--- node${i + 1} ---\n${(n?.logs() ?? '').split('\n').filter((l) => /CHECK CONDITION|LUN sharing|login|session/i.test(l)).slice(-30).join('\n')}`);
    expect(rtpgs, `RTPG through each path ${when}\n${why.out}\n${answers.join('\n')}`).toEqual([want, want, want]);
  }

  /**
   * fio with crc32c verification on XFS on the map (mounted if it is not), `fault` hitting the owner 6 s in: no I/O error
   * above the paths, every block verified, the file system clean. Returns ms from fault to fio's end.
   */
  async function fioThrough(fault: () => Promise<void>): Promise<number> {
    const map = `/dev/mapper/${wwid}`;
    const fio = ['fio', '--name=mn', '--directory=/mnt/mn', '--direct=1', '--ioengine=libaio', '--rw=randwrite', '--bs=4k',
      '--iodepth=8', '--size=24M', '--fsync=32', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--randseed=77',
      '--output-format=json', '--output=/run/fiomn.json'].join(' ');
    const mnt = await vm.sh(`grep -q ' /mnt/mn ' /proc/mounts || mount ${map} /mnt/mn`, { timeoutS: 120 });
    expect(mnt.code, describeStep('mount', mnt)).toBe(0);
    expect((await vm.sh(`rm -f /mnt/mn/mn.* /run/fiomn.*; dmesg -C; setsid ${fio} >/run/fiomn.log 2>&1 </dev/null & echo ok`)).code).toBe(0);
    await sleep(6000);
    expect((await vm.sh('pidof fio')).code, 'fio still running when the fault hits').toBe(0);
    const faultAt = Date.now();
    await fault();
    const done = await vm.sh('for i in $(seq 1 1200); do pidof fio >/dev/null || exit 0; sleep 0.5; done; exit 1', { timeoutS: 700 });
    expect(done.code, 'fio finished').toBe(0);
    const ms = Date.now() - faultAt;
    const out = await vm.sh('cat /run/fiomn.json; cat /run/fiomn.log >&2');
    const f = parseFio(out.out, out.err, 0);
    expect(f.error, `${out.err}\n${out.out.slice(0, 3000)}`).toBe(0);
    expect(f.writeBytes).toBe(24 * MiB);
    expect(f.readBytes).toBe(24 * MiB);
    // The dead path's sd device logs its failed commands (dm-multipath retries them on another
    // path); nothing above it — the map, the file system — may see an error.
    const dm = (await vm.sh(`basename $(readlink -f ${map})`)).out.trim();
    const k = await vm.sh('dmesg');
    const above = k.out.split('\n').filter((l) => !/I\/O error, dev sd[a-z]+,/.test(l));
    expect(above.join('\n'), 'kernel log above the paths').not.toMatch(new RegExp(`I/O error|Buffer I/O error|critical medium error|XFS.*(corrupt|error)|${dm}.*error`, 'i'));
    const um = await vm.sh('umount /mnt/mn && xfs_repair -n ' + map, { timeoutS: 180 });
    expect(um.code, describeStep('umount + xfs_repair -n', um)).toBe(0);
    return ms;
  }

  test('XFS on the map, fio with crc32c verification; the owner SIGKILLed mid-I/O: no I/O error, every block verified', async () => {
    const map = `/dev/mapper/${wwid}`;
    const mk = await vm.sh(`mkfs.xfs -f ${map} >/dev/null && mkdir -p /mnt/mn && mount ${map} /mnt/mn`, { timeoutS: 180 });
    expect(mk.code, describeStep('mkfs.xfs + mount', mk)).toBe(0);
    recordTiming('multi-node-vm-fio-after-kill', await fioThrough(() => nodes[owner]!.kill('SIGKILL')));
  }, 900_000);

  test('the killed node restarts and rejoins as standby: RTPG through every path (its own too) shows one active/optimized group', async () => {
    await nodes[owner]!.restart();
    await expectOneOwnerThroughEveryPath('after the killed node restarted');
  }, 300_000);

  test('the owner SIGSTOPped mid-fio for 15 s, then continued (tcmu-runner#420): nobody else writes meanwhile; no I/O error, every block verified', async () => {
    const stopped = ownerOnVolume();
    const pid = nodes[stopped]!.pid()!;
    const ms = await fioThrough(async () => {
      process.kill(pid, 'SIGSTOP');
      try {
        // Longer than the initiator's NOP-Out timeout plus replacement_timeout (the stopped path
        // fails; dm-multipath queues) and three times the heartbeat staleness.
        await sleep(15_000);
        // The stopped owner's gluster client still holds the file's lock: no second writer
        // exists, so nothing it had in flight can land after another owner's writes.
        expect(ownerOnVolume(), 'the LU stays with the stopped owner').toBe(stopped);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    });
    recordTiming('multi-node-vm-fio-after-stop', ms, { stopped: `node${stopped + 1}` });
    // Every path is back and RTPG agrees through all of them: one owner, two standbys.
    await expectOneOwnerThroughEveryPath('after SIGCONT');
  }, 900_000);

  test('SET TARGET PORT GROUPS (sg_stpg) through a standby path makes its node the owner; RTPG agrees through every path', async () => {
    const from = ownerOnVolume();
    const to = (from + 1) % 3;
    const r = await vm.sh(`sg_stpg --optimized ${devs[to]!.dev}`, { timeoutS: 60 });
    expect(r.code, describeStep('sg_stpg --optimized', r)).toBe(0);
    // SPC-4 §6.45: GOOD comes once the transition is complete.
    expect(ownerOnVolume()).toBe(to);
    const a = await vm.json<AluaReport>('alua_report', { name: 'alua_report (after STPG)', timeoutS: 120 });
    const rtpgs = a.disks.map((d) => JSON.stringify(d.rtpg.groups?.map((g) => [g.id, g.stateName])));
    expect(new Set(rtpgs).size, rtpgs.join('\n')).toBe(1);
    const toTpg = a.disks.find((d) => d.dev === devs[to]!.dev)!.vpd83.designators.find((x) => x.assoc === 'port' && x.typeName === 'tpg')?.tpg;
    expect(a.disks[0]!.rtpg.groups!.find((g) => g.stateName === 'active/optimized')?.id).toBe(toTpg);
  }, 300_000);

  test('the owner\'s gluster client killed mid-fio: its commands are answered as by a path in transition, a survivor serves; no I/O error, every block verified; remounted, the node rejoins without a restart', async () => {
    const lost = ownerOnVolume();
    const client = await vol.clientPid(mounts[lost]!);
    expect(client, 'the owner\'s glusterfs client').toBeDefined();
    const ms = await fioThrough(async () => {
      process.kill(client!, 'SIGKILL');
    });
    recordTiming('multi-node-vm-fio-after-client-kill', ms, { lost: `node${lost + 1}` });
    expect(ownerOnVolume(), 'a survivor owns the LU').not.toBe(lost);
    expect(nodes[lost]!.logs()).toMatch(/volume unreachable; not serving media commands/);
    // The node's mount comes back (a new gluster client); its server, never restarted, drops the
    // dead descriptor and rejoins as standby.
    const pid = nodes[lost]!.pid();
    await vol.mountClient(mounts[lost]!);
    await expectOneOwnerThroughEveryPath('after the node\'s mount came back');
    expect(nodes[lost]!.pid(), 'the same server process').toBe(pid);
    expect(nodes[lost]!.logs()).toMatch(/descriptor is dead \(its gluster client is gone, or did not reopen it\); opening the file again/);
  }, 900_000);

  test('the owner cut off from the bricks mid-fio, then reconnected: it fences, a survivor serves; no I/O error, every block verified; it rejoins as standby', async () => {
    // A node gets a gluster client with a network link of its own to the bricks, so the cut is
    // real while the initiator still reaches its target; the LU is moved there (explicit ALUA).
    const cut = (ownerOnVolume() + 1) % 3;
    await nodes[cut]!.stop();
    const link = await vol.mountOverLink(mounts[cut]!, cut + 1);
    nodes[cut] = await start(cut);
    await expectOneOwnerThroughEveryPath('after the node was remounted over its own link');
    const r = await vm.sh(`sg_stpg --optimized ${devs[cut]!.dev}`, { timeoutS: 60 });
    expect(r.code, describeStep('sg_stpg --optimized', r)).toBe(0);
    expect(ownerOnVolume()).toBe(cut);
    await sleep(5000); // failback immediate: dm-multipath's active group follows the owner
    try {
      const ms = await fioThrough(() => link.cut());
      recordTiming('multi-node-vm-fio-after-partition', ms, { cut: `node${cut + 1}` });
      expect(ownerOnVolume(cut), 'a survivor owns the LU').not.toBe(cut);
    } finally {
      await link.heal();
    }
    await expectOneOwnerThroughEveryPath('after the link healed');
  }, 900_000);

  test('sg_persist: registered through one node, reserved through another, the reservation outlives the owner', async () => {
    // Each sd device is one I_T nexus through one node (devs is in node order).
    const persist = async (args: string, dev: string): Promise<string> => {
      // A path may first report a unit attention (2Ah/06h after a failover): try again.
      const r = await vm.sh(`for i in 1 2 3 4 5 6 7 8; do sg_persist ${args} ${dev} && exit 0; sleep 1; done; exit 1`, { timeoutS: 60 });
      expect(r.code, describeStep(`sg_persist ${args} ${dev}`, r)).toBe(0);
      return r.out;
    };
    // A restarted node's path may come back as a new sd device (the kernel rescans the LUN on
    // re-login): look each path up again by its portal.
    for (let i = 0; i < 3; i++) devs[i] = await waitDevice(vm, byPath(portals[i]!, IQN), 512 * MiB);
    const [n1, n2, n3] = devs.map((d) => d.dev);
    await persist('--out --register --param-sark=0xabc1', n1!);
    await persist('--out --register --param-sark=0xabc2', n2!);
    await persist('--out --reserve --param-rk=0xabc2 --prout-type=5', n2!); // Write Exclusive, registrants only
    const keys = await persist('--in --read-keys', n3!);
    expect(keys).toMatch(/0xabc1/);
    expect(keys).toMatch(/0xabc2/);
    expect(await persist('--in --read-reservation', n3!)).toMatch(/Key\s*=\s*0xabc2[\s\S]*Write Exclusive, registrants only/i);
    // The owner dies; through a survivor the LU still holds both registrations and the reservation.
    const a = await vm.json<AluaReport>('alua_report', { name: 'alua_report (before kill)', timeoutS: 120 });
    const victim = devs.findIndex((d) => d.dev === a.disks.find((x) => /active.optimized/.test(x.accessState))?.dev);
    expect(victim).toBeGreaterThanOrEqual(0);
    await nodes[victim]!.kill('SIGKILL');
    const survivor = devs[(victim + 1) % 3]!.dev;
    expect(await persist('--in --read-reservation', survivor)).toMatch(/Key\s*=\s*0xabc2[\s\S]*Write Exclusive, registrants only/i);
    const after = await persist('--in --read-keys', survivor);
    expect(after).toMatch(/0xabc1/);
    expect(after).toMatch(/0xabc2/);
    await nodes[victim]!.restart();
    // CLEAR comes through a registered I_T nexus with its own key (SPC-4 §5.13.11.2.6; from any
    // other nexus it is a RESERVATION CONFLICT): n1 or n2, whichever was not the owner killed.
    const [clearDev, clearKey] = victim === 1 ? [n1!, '0xabc1'] : [n2!, '0xabc2'];
    await persist(`--out --clear --param-rk=${clearKey}`, clearDev);
    expect(await persist('--in --read-keys', survivor)).toMatch(/no registered reservation keys/i);
    const lo = await vm.sh(`iscsiadm -m node -T ${IQN} --logout`, { timeoutS: 120 });
    expect(lo.code, describeStep('logout', lo)).toBe(0);
  }, 300_000);
});
