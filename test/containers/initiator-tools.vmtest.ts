/**
 * The packaged initiators: libiscsi tools and qemu's iscsi:// driver run inside the initiators
 * image (docker/), started through testcontainers with host networking, against glfs-target on
 * the host's loopback; and the initiator VM booted from that image (qemu inside the container).
 * Where Docker is absent (or GLFS_TOOLS_RUNNER=host) the same checks run the host's tools, and the
 * VM test boots the host's qemu.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INITIATOR, IS_CI, describeRun, freePort, startGlfsTarget, tempDir, which, type RunResult, type TargetHandle } from '../e2e/harness.js';
import { Vm, portalIp, recordTiming, vmMissing } from '../vm/vm.js';
import { byPath, discover, login, logout, startIscsid, waitDevice } from '../vm/scenarios.js';
import { containerRunner, dockerUnavailable, hostRunner, type ToolRunner } from './docker.js';

const IQN = 'iqn.2016-06.org.gluster:containers';
const MiB = 1024 * 1024;
const dockerWhy = await dockerUnavailable();
const useDocker = dockerWhy === '' && process.env.GLFS_TOOLS_RUNNER !== 'host';
if (!useDocker) console.warn(`[containers] using host tools: ${dockerWhy || 'GLFS_TOOLS_RUNNER=host'}`);
const hostToolsMissing = useDocker ? [] : ['iscsi-ls', 'iscsi-inq', 'iscsi-readcapacity16', 'qemu-img'].filter((t) => !which(t));
const skip = hostToolsMissing.length > 0 && !IS_CI;

function ok(r: RunResult): RunResult {
  expect(r.code, describeRun(r)).toBe(0);
  return r;
}

describe.skipIf(skip)(`initiator tools (${useDocker ? 'in the initiators container via testcontainers' : 'host'})`, () => {
  let t: TargetHandle;
  let tools: ToolRunner;
  let tmp: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    if (hostToolsMissing.length) throw new Error(`host tools missing: ${hostToolsMissing.join(', ')}`);
    tmp = tempDir('containers-e2e-');
    t = await startGlfsTarget({ iqn: IQN, luns: [{ size: '64M' }, { size: '32M' }] });
    const c0 = Date.now();
    tools = useDocker ? await containerRunner([tmp.dir]) : hostRunner();
    recordTiming(`tools-runner-start-${tools.kind}`, Date.now() - c0);
  });

  afterAll(async () => {
    await tools?.close();
    await t?.stop();
    tmp?.cleanup();
  });

  test('the tools really run where they should (container: not the host\'s mount namespace)', async () => {
    const r = ok(await tools.run('cat', ['/etc/hostname', '/proc/1/cmdline']));
    if (tools.kind === 'container') expect(r.stdout).toContain('sleep');
    else expect(r.stdout).not.toContain('sleep\0infinity');
  });

  test('iscsi-ls: discovery over the host loopback lists the target and both LUNs', async () => {
    const r = ok(await tools.run('iscsi-ls', ['-i', INITIATOR, '-s', `iscsi://${t.portal}`], { timeout: 30_000 }));
    const targets = [...r.stdout.matchAll(/^Target:(\S+) Portal:(\S+)$/gm)].map((m) => ({ iqn: m[1], portal: m[2] }));
    expect(targets).toEqual([{ iqn: IQN, portal: `${t.portal},1` }]);
    expect(r.stdout).toMatch(/^Lun:0\s+Type:DIRECT_ACCESS \(Size:63M\)/m);
    expect(r.stdout).toMatch(/^Lun:1\s+Type:DIRECT_ACCESS \(Size:31M\)/m);
  });

  test('iscsi-readcapacity16 and iscsi-inq (VPD 0x83 has an NAA designator)', async () => {
    const rc = ok(await tools.run('iscsi-readcapacity16', ['-i', INITIATOR, t.url(0)]));
    expect(rc.stdout).toMatch(/LOGICAL BLOCK LENGTH IN BYTES:512/);
    expect(rc.stdout).toMatch(new RegExp(`RETURNED LOGICAL BLOCK ADDRESS:${64 * MiB / 512 - 1}\\b`));
    const inq = ok(await tools.run('iscsi-inq', ['-i', INITIATOR, '-e', '1', '-c', '131', t.url(0)]));
    expect(inq.stdout, describeRun(inq)).toMatch(/Association:\(0\) LOGICAL_UNIT\nDesignator Type:\(3\) NAA/);
  });

  test('qemu-img convert + compare through the iscsi:// driver', async () => {
    const img = join(tmp.dir, 'rand.img');
    writeFileSync(img, randomBytes(8 * MiB));
    // The temp dir is bind-mounted into the container at the same path: one command line for both.
    ok(await tools.run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', img, t.url(0)], { timeout: 120_000 }));
    const c = ok(await tools.run('qemu-img', ['compare', '--image-opts', `driver=raw,file.driver=file,file.filename=${img}`,
      `driver=raw,size=${8 * MiB},file.driver=iscsi,file.transport=tcp,file.portal=${t.portal},file.target=${IQN},file.lun=0,file.initiator-name=${INITIATOR}`], { timeout: 120_000 }));
    expect(c.stdout).toContain('Images are identical.');
  });
});

const vmWhy = useDocker ? '' : vmMissing();
describe.skipIf(vmWhy !== '' && !IS_CI)(`initiator VM booted ${useDocker ? 'from the initiators image' : 'with the host qemu'}`, () => {
  test('boot, discovery, login, by-path device, logout', async () => {
    if (vmWhy) throw new Error(vmWhy);
    const port = await freePort();
    const portal = `${portalIp(0)}:${port}`;
    const t = await startGlfsTarget({ iqn: IQN, portals: [{ address: `127.0.0.1:${port}`, advertise: portal }], luns: [{ size: '512M' }] });
    const vm = await Vm.boot({ name: 'containers', portals: [{ port }], runner: useDocker ? 'docker' : 'host' });
    try {
      expect(vm.runner).toBe(useDocker ? 'docker' : 'host');
      await startIscsid(vm, 'iqn.2007-10.com.example:vm-containers');
      await discover(vm, portal, IQN);
      await login(vm, IQN, portal);
      const d = await waitDevice(vm, byPath(portal, IQN), 512 * MiB);
      expect(d.dev).toMatch(/^\/dev\/sd[a-z]$/);
      await logout(vm, IQN, portal);
    } finally {
      await vm.stop();
      await t.stop();
    }
  });
});
