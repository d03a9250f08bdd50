/**
 * Scenario bodies shared by several suites (the VM suite, the gluster suite, the container
 * suite). Each guest step prints one JSON object; every step's result is asserted here.
 */
import { expect } from 'vitest';
import { freePort, startGlfsTarget, type TargetHandle } from '../e2e/harness.js';
import { describeStep, portalIp, Vm } from './vm.js';

export interface DevInfo {
  path: string;
  dev: string;
  size: number;
  ro: number;
  vendor: string;
  model: string;
  wwid: string;
}

/** The udev by-path name of an iSCSI LUN: ip-<addr:port>-iscsi-<iqn>-lun-<n>. */
export const byPath = (portal: string, iqn: string, lun = 0) => `/dev/disk/by-path/ip-${portal}-iscsi-${iqn}-lun-${lun}`;

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Starts iscsid with the given initiator name (and iscsid.conf overrides); asserts it runs. */
export async function startIscsid(vm: Vm, initiator: string, conf: Record<string, string | number> = {}): Promise<void> {
  const kv = Object.entries(conf).map(([k, v]) => q(`${k}=${v}`)).join(' ');
  const r = await vm.json<{ iscsid: string; name: string }>(
    `iscsi_start ${q(initiator)} ${kv} >&2 || exit 1\nprintf '{"iscsid":%s,"name":%s}\\n' "$(jstr "$(pidof iscsid)")" "$(jstr "$(cat /etc/iscsi/initiatorname.iscsi)")"`,
    { name: 'start iscsid' });
  expect(r._step.code, describeStep('iscsi_start', r._step)).toBe(0);
  expect(r.iscsid).toMatch(/^\d+/);
  expect(r.name).toBe(`InitiatorName=${initiator}`);
}

/** A target with one LUN and a VM logged in to it (oneLunSession). */
export interface OneLunSession {
  t: TargetHandle;
  vm: Vm;
  /** The portal as the VM reaches it. */
  portal: string;
  /** The LUN's block device in the VM. */
  dev: string;
}

export const ONE_LUN_BYTES = 512 * 1024 * 1024;

/**
 * glfs-target serving `iqn` with one 512 MiB LUN on a free loopback port (advertised at the
 * address the VM reaches it by); a VM with iscsid running as `initiator` (plus iscsid.conf
 * overrides), which discovers and logs in. If a step fails, what was started is stopped.
 */
export async function oneLunSession(o: {
  iqn: string; vmName: string; initiator: string;
  iscsid?: Record<string, string | number>; relayEnv?: NodeJS.ProcessEnv;
}): Promise<OneLunSession> {
  const port = await freePort();
  const portal = `${portalIp(0)}:${port}`;
  const t = await startGlfsTarget({ iqn: o.iqn, portals: [{ address: `127.0.0.1:${port}`, advertise: portal }], luns: [{ size: '512M' }] });
  let vm: Vm | undefined;
  try {
    vm = await Vm.boot({ name: o.vmName, portals: [{ port }], ...(o.relayEnv ? { relayEnv: o.relayEnv } : {}) });
    await startIscsid(vm, o.initiator, o.iscsid);
    await discover(vm, portal, o.iqn);
    await login(vm, o.iqn, portal);
    const dev = (await waitDevice(vm, byPath(portal, o.iqn), ONE_LUN_BYTES)).dev;
    return { t, vm, portal, dev };
  } catch (err) {
    await vm?.stop();
    await t.stop();
    throw err;
  }
}

/** sendtargets discovery; asserts the target is offered at `portal` and returns the records. */
export async function discover(vm: Vm, portal: string, iqn: string, extraArgs = ''): Promise<string[]> {
  const r = await vm.sh(`iscsiadm -m discovery -t sendtargets -p ${portal} ${extraArgs}`, { name: `discover ${portal}`, timeoutS: 60 });
  expect(r.code, describeStep('discovery', r)).toBe(0);
  const records = r.out.trim().split('\n').filter(Boolean);
  expect(records.some((l) => l.trim().split(/\s+/)[1] === iqn && l.startsWith(portal)), describeStep('discovery', r)).toBe(true);
  return records;
}

export async function login(vm: Vm, iqn: string, portal: string, iface = 'default'): Promise<void> {
  const r = await vm.sh(`iscsiadm -m node -T ${iqn} -p ${portal} -I ${iface} --login`, { name: 'login', timeoutS: 90 });
  expect(r.code, describeStep('login', r)).toBe(0);
  expect(r.out).toContain(`Login to [iface: ${iface}, target: ${iqn}, portal: ${portal.replace(':', ',')}] successful.`);
}

export async function logout(vm: Vm, iqn: string, portal: string): Promise<void> {
  const r = await vm.sh(`iscsiadm -m node -T ${iqn} -p ${portal} --logout`, { name: 'logout', timeoutS: 90 });
  expect(r.code, describeStep('logout', r)).toBe(0);
  expect(r.out).toMatch(new RegExp(`Logout of \\[sid: \\d+, target: ${iqn.replace(/\./g, '\\.')}, portal: ${portal.replace(':', ',').replace(/\./g, '\\.')}\\] successful\\.`));
}

/** Waits for the by-path link; returns what it points at, asserting a non-empty block device. */
export async function waitDevice(vm: Vm, path: string, expectSize?: number, timeoutS = 60): Promise<DevInfo> {
  const r = await vm.json<DevInfo>(`udevadm settle -t 10; wait_path ${q(path)} ${timeoutS} || { ls -l /dev/disk/by-path >&2; exit 1; }\ndev_json ${q(path)}`,
    { name: `wait ${path}`, timeoutS: timeoutS + 20 });
  expect(r._step.code, describeStep('wait for device', r._step)).toBe(0);
  expect(r.dev).toMatch(/^\/dev\/(sd[a-z]+|dm-\d+)$/);
  if (expectSize !== undefined) expect(r.size).toBe(expectSize);
  return r;
}

export async function sessions(vm: Vm): Promise<string[]> {
  const r = await vm.json<{ sessions: string[] }>('sessions_json', { name: 'sessions' });
  return r.sessions;
}

export interface LifecycleOpts {
  iqn: string;
  /** Guest-side portal, "10.0.2.100:PORT". */
  portal: string;
  initiator: string;
  lunBytes?: number;
  /** How many files to write (default 24, ~50 MiB). */
  files?: number;
}

/**
 * Scenario 1, step by step: discovery -> login -> by-path device -> mkfs.xfs -> mount -> write
 * files -> umount -> logout (device gone) -> login -> mount -> checksums verify -> xfs_repair -n.
 */
export async function xfsLifecycle(vm: Vm, o: LifecycleOpts): Promise<void> {
  const lunBytes = o.lunBytes ?? 512 * 1024 * 1024;
  const path = byPath(o.portal, o.iqn, 0);

  await startIscsid(vm, o.initiator);
  const records = await discover(vm, o.portal, o.iqn);
  expect(records).toContain(`${o.portal},1 ${o.iqn}`);
  await login(vm, o.iqn, o.portal);
  expect((await sessions(vm)).some((s) => s.includes(o.iqn) && s.includes(`${o.portal},`))).toBe(true);

  const dev = await waitDevice(vm, path, lunBytes);
  expect(dev.ro).toBe(0);

  const mk = await vm.sh(`mkfs.xfs -f ${q(path)}`, { name: 'mkfs.xfs', timeoutS: 180 });
  expect(mk.code, describeStep('mkfs.xfs', mk)).toBe(0);
  expect(mk.out).toMatch(/meta-data=.*isize=/);

  const mnt = await vm.json<{ mounted: string; fstype: string }>(
    `mkdir -p /mnt/s1 && mount ${q(path)} /mnt/s1 || exit 1\nprintf '{"mounted":%s,"fstype":%s}\\n' "$(jstr "$(findmnt -n -o SOURCE /mnt/s1)")" "$(jstr "$(findmnt -n -o FSTYPE /mnt/s1)")"`,
    { name: 'mount' });
  expect(mnt._step.code, describeStep('mount', mnt._step)).toBe(0);
  expect(mnt.fstype).toBe('xfs');
  expect(mnt.mounted).toBe(dev.dev);

  const nfiles = o.files ?? 24;
  const w = await vm.json<{ files: number; bytes: number; manifest: string }>(`write_files /mnt/s1 ${nfiles}`, { name: 'write files', timeoutS: 300 });
  expect(w._step.code, describeStep('write files', w._step)).toBe(0);
  expect(w.files).toBe(nfiles);
  const manifest = w.manifest.trim().split('\n');
  expect(manifest).toHaveLength(nfiles);

  const um = await vm.sh('umount /mnt/s1 && ! findmnt /mnt/s1', { name: 'umount' });
  expect(um.code, describeStep('umount', um)).toBe(0);

  await logout(vm, o.iqn, o.portal);
  const gone = await vm.sh(`udevadm settle -t 10; wait_gone ${q(path)} 30 && ! [ -e /sys/block/${dev.dev.slice(5)} ]`, { name: 'device gone', timeoutS: 60 });
  expect(gone.code, describeStep('device gone after logout', gone)).toBe(0);
  expect(await sessions(vm)).toEqual([]);

  await login(vm, o.iqn, o.portal);
  const dev2 = await waitDevice(vm, path, lunBytes);
  const verify = await vm.sh(`mount ${q(path)} /mnt/s1 || exit 1\ncd /mnt/s1 && sha256sum -c /run/manifest.sha256`, { name: 'verify checksums', timeoutS: 300 });
  expect(verify.code, describeStep('sha256sum -c', verify)).toBe(0);
  const okLines = verify.out.trim().split('\n').filter((l) => l.endsWith(': OK'));
  expect(okLines).toHaveLength(nfiles);
  // The manifest itself was taken before the logout; compare it with what the host recorded too.
  const again = await vm.sh(`cd /mnt/s1 && find . -type f -name '*.bin' | sort | xargs sha256sum`, { name: 'rehash' });
  expect(again.out.trim().split('\n')).toEqual(manifest);

  const fin = await vm.sh(`umount /mnt/s1 && xfs_repair -n ${q(dev2.dev)} >/dev/null && iscsiadm -m node -T ${o.iqn} -p ${o.portal} --logout >/dev/null && echo clean`,
    { name: 'xfs_repair -n + logout', timeoutS: 180 });
  expect(fin.code, describeStep('final check', fin)).toBe(0);
  expect(fin.out.trim()).toBe('clean');
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: kubelet's in-tree iscsi plugin (pkg/volume/iscsi), command for command
// ---------------------------------------------------------------------------------------------

export interface KubeVolume {
  /** Volume (PV) name; the plugin's iface is "<portal>:<name>" when initiatorName is set. */
  name: string;
  portal: string;
  iqn: string;
  lun: number;
  fsType: string;
  readOnly: boolean;
  initiatorName: string;
  /** CHAP secrets as the plugin passes them (keys node.session.auth.* / discovery.sendtargets.auth.*). */
  chapSession?: Record<string, string>;
  chapDiscovery?: Record<string, string>;
  podUid?: string;
}

export interface KubeAttach {
  iface: string;
  device: DevInfo;
  globalPath: string;
  podPath: string;
  /** Every command run, with its exit code (the transcript the test asserts on). */
  transcript: Array<{ cmd: string; code: number }>;
}

/**
 * Attach + mount exactly as kubelet's iscsi plugin does (iscsi_util.go AttachDisk + the disk
 * mounter): clone the default iface with the volume's initiatorname, discoverydb -o new,
 * (CHAP discovery settings), --discover, (node -o update of CHAP settings), node.session.scan
 * manual, --login, node.startup manual, scan the LUN on the session's SCSI host, wait for the
 * by-path device, blkid, mkfs when unformatted (never for readOnly), mount -t fsType [-o ro] on
 * the global path, bind-mount into the pod dir (remount ro for readOnly).
 */
export async function kubeletAttach(vm: Vm, v: KubeVolume): Promise<KubeAttach> {
  const iface = `${v.portal}:${v.name}`;
  const transcript: KubeAttach['transcript'] = [];
  const step = async (cmd: string, opts: { allowFail?: boolean; timeoutS?: number } = {}) => {
    const r = await vm.sh(cmd, { name: `kubelet: ${cmd.slice(0, 50)}`, timeoutS: opts.timeoutS ?? 90 });
    transcript.push({ cmd, code: r.code });
    if (!opts.allowFail) expect(r.code, describeStep(`kubelet step`, r)).toBe(0);
    return r;
  };

  // cloneIface: read the default iface, create ours, copy its settings with our initiatorname.
  const show = await step('iscsiadm -m iface -I default -o show');
  const params = new Map<string, string>();
  for (const line of show.out.split('\n')) {
    const m = /^(iface\.[\w.]+) = (.*)$/.exec(line.trim());
    if (m && m[2] !== '<empty>' && m[1] !== 'iface.iscsi_ifacename') params.set(m[1]!, m[2]!);
  }
  expect(params.get('iface.transport_name')).toBe('tcp');
  params.set('iface.initiatorname', v.initiatorName);
  await step(`iscsiadm -m iface -I ${q(iface)} -o new`);
  for (const [k, val] of params) await step(`iscsiadm -m iface -I ${q(iface)} -o update -n ${k} -v ${q(val)}`);
  const ifaceShow = await step(`iscsiadm -m iface -I ${q(iface)} -o show`);
  expect(ifaceShow.out).toContain(`iface.initiatorname = ${v.initiatorName}`);

  const dbase = `iscsiadm -m discoverydb -t sendtargets -p ${v.portal} -I ${q(iface)}`;
  await step(`${dbase} -o new`);
  if (v.chapDiscovery) {
    await step(`${dbase} -o update -n discovery.sendtargets.auth.authmethod -v CHAP`);
    for (const [k, val] of Object.entries(v.chapDiscovery)) await step(`${dbase} -o update -n ${k} -v ${q(val)}`);
  }
  const disc = await step(`${dbase} --discover`);
  expect(disc.out).toContain(`${v.portal},`);
  expect(disc.out).toContain(v.iqn);

  const nbase = `iscsiadm -m node -p ${v.portal} -T ${v.iqn} -I ${q(iface)}`;
  if (v.chapSession) {
    await step(`${nbase} -o update -n node.session.auth.authmethod -v CHAP`);
    for (const [k, val] of Object.entries(v.chapSession)) await step(`${nbase} -o update -n ${k} -v ${q(val)}`);
  }
  await step(`${nbase} -o update -n node.session.scan -v manual`);
  const li = await step(`${nbase} --login`, { timeoutS: 120 });
  expect(li.out).toContain(`Login to [iface: ${iface}, target: ${v.iqn}, portal: ${v.portal.replace(':', ',')}] successful.`);
  await step(`iscsiadm -m node -p ${v.portal} -T ${v.iqn} -o update -n node.startup -v manual`);

  // scanOneLun: the session's SCSI host number, then "0 0 <lun>" into its scan file.
  const host = await step(`iscsiadm -m session -P 3 | awk -v t=${q(v.iqn)} -v p=${q(v.portal)} '$1=="Target:" {tgt=$2} $1=="Current" && $2=="Portal:" {cur=$3} /Host Number:/ { if (tgt==t && index(cur, p)==1) { print $3; exit } }'`);
  const hostNo = host.out.trim();
  expect(hostNo).toMatch(/^\d+$/);
  await step(`echo '0 0 ${v.lun}' > /sys/class/scsi_host/host${hostNo}/scan`);

  const path = byPath(v.portal, v.iqn, v.lun);
  const device = await waitDevice(vm, path);
  transcript.push({ cmd: `wait for ${path}`, code: 0 });

  const globalPath = `/var/lib/kubelet/plugins/kubernetes.io/iscsi/iface-${iface}/${v.portal}-${v.iqn}-lun-${v.lun}`;
  const podPath = `/var/lib/kubelet/pods/${v.podUid ?? 'pod-1'}/volumes/kubernetes.io~iscsi/${v.name}`;
  await step(`mkdir -p ${q(globalPath)} ${q(podPath)}`);
  // FormatAndMount: blkid exit 2 = no filesystem; format only when not read-only.
  const blk = await step(`blkid -p -s TYPE -s PTTYPE -o export ${q(device.dev)}`, { allowFail: true });
  if (blk.code === 2) {
    expect(v.readOnly, 'kubelet refuses to format a read-only volume').toBe(false);
    await step(`mkfs.${v.fsType} ${q(device.dev)}`, { timeoutS: 180 });
  } else {
    expect(blk.code, describeStep('blkid', blk)).toBe(0);
    expect(blk.out).toContain(`TYPE=${v.fsType}`);
  }
  await step(`mount -t ${v.fsType} -o ${v.readOnly ? 'ro' : 'defaults'} ${q(device.dev)} ${q(globalPath)}`);
  await step(`mount -o bind ${q(globalPath)} ${q(podPath)}`);
  if (v.readOnly) await step(`mount -o bind,remount,ro ${q(podPath)}`);
  const opts = await step(`findmnt -n -o OPTIONS --target ${q(podPath)}`);
  expect(opts.out.split(',')[0]!.trim()).toBe(v.readOnly ? 'ro' : 'rw');
  return { iface, device, globalPath, podPath, transcript };
}

/** Unmount + detach as the plugin does: umount pod dir and global path, logout, delete node and iface records. */
export async function kubeletDetach(vm: Vm, v: KubeVolume, a: KubeAttach): Promise<void> {
  const nbase = `iscsiadm -m node -p ${v.portal} -T ${v.iqn} -I ${q(a.iface)}`;
  for (const cmd of [`umount ${q(a.podPath)}`, `umount ${q(a.globalPath)}`, `${nbase} --logout`, `${nbase} -o delete`,
    `iscsiadm -m iface -I ${q(a.iface)} -o delete`]) {
    const r = await vm.sh(cmd, { name: `kubelet detach: ${cmd.slice(0, 40)}`, timeoutS: 90 });
    expect(r.code, describeStep('kubelet detach', r)).toBe(0);
  }
  const gone = await vm.sh(`udevadm settle -t 10; wait_gone ${q(byPath(v.portal, v.iqn, v.lun))} 30`, { timeoutS: 60 });
  expect(gone.code, describeStep('device gone after detach', gone)).toBe(0);
}

// ---------------------------------------------------------------------------------------------
// fio
// ---------------------------------------------------------------------------------------------

export interface FioSummary {
  code: number;
  error: number;
  readIops: number;
  writeIops: number;
  readBytes: number;
  writeBytes: number;
  runtimeMs: number;
  raw: string;
  stderr: string;
}

/** Parses fio --output-format=json (the last JSON document in `out`). */
export function parseFio(out: string, stderr: string, code: number): FioSummary {
  const start = out.indexOf('{');
  let j: { jobs?: Array<Record<string, any>> } = {};
  try {
    j = JSON.parse(out.slice(start)) as typeof j;
  } catch { /* leave empty: the assertions will say so */ }
  const jobs = j.jobs ?? [];
  const sum = (f: (x: Record<string, any>) => number) => jobs.reduce((a, x) => a + (Number(f(x)) || 0), 0);
  return {
    code,
    error: sum((x) => x.error),
    readIops: Math.round(sum((x) => x.read?.iops)),
    writeIops: Math.round(sum((x) => x.write?.iops)),
    readBytes: sum((x) => x.read?.io_bytes),
    writeBytes: sum((x) => x.write?.io_bytes),
    runtimeMs: Math.max(0, ...jobs.map((x) => Number(x.job_runtime) || 0)),
    raw: out,
    stderr,
  };
}

/** Arguments for a verifying fio job on a raw device. */
export function fioArgs(o: { dev: string; rw: string; bs?: string; iodepth?: number; size: string; seconds?: number; extra?: string[] }): string {
  const args = [
    'fio', '--name=verify', `--filename=${o.dev}`, '--direct=1', '--ioengine=libaio', `--rw=${o.rw}`, `--bs=${o.bs ?? '4k'}`,
    `--iodepth=${o.iodepth ?? 32}`, `--size=${o.size}`, '--verify=crc32c', '--verify_fatal=1', '--do_verify=1',
    '--output-format=json', '--randseed=4242', ...(o.seconds ? [`--runtime=${o.seconds}`, '--time_based'] : []), ...(o.extra ?? []),
  ];
  return args.join(' ');
}
