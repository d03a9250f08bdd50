/**
 * The target image (docker/target.Dockerfile, built by docker/build.sh) run as a gluster node's
 * service would run it, and as deploy/kubernetes/daemonset.yaml runs it: host networking, the
 * DaemonSet's capabilities only (read from the manifest), no new privileges, the config directory
 * and the CHAP secrets mounted read-only where the DaemonSet mounts them, a tmpfs for the control
 * socket, the LUN directory (here a host temp dir standing in for the gluster mount) mounted
 * read-write at the same path, a secret also passed as an environment variable. The initiator
 * tools (the initiators image, or the host's without Docker's initiators image) log in with CHAP,
 * write and verify data, and the data is in the host's file.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { INITIATOR, IS_CI, REPO_ROOT, describeRun, freePort, run, tempDir, which, type RunResult } from '../e2e/harness.js';
import { containerRunner, dockerUnavailable, hostRunner, type ToolRunner } from './docker.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';

const TARGET_IMAGE = process.env.GLFS_TARGET_IMAGE ?? 'glfs-target/target:latest';
const IQN_FILE = 'iqn.2016-06.org.gluster:image-file-secret';
const IQN_ENV = 'iqn.2016-06.org.gluster:image-env-secret';
const CHAP_USER = 'k8s-node';
const FILE_SECRET = 'file-secret-0123456789';
const ENV_SECRET = 'env-secret-0123456789';
const MiB = 1024 * 1024;
const SECRETS_DIR = '/etc/glfs-target-secrets';
/** The DaemonSet's container: its capabilities are the ones this container gets. */
const daemonSetContainer = (parseYaml(readFileSync(join(REPO_ROOT, 'deploy', 'kubernetes', 'daemonset.yaml'), 'utf8')) as {
  spec: { template: { spec: { containers: { securityContext: { capabilities: { drop: string[]; add: string[] } } }[] } } };
}).spec.template.spec.containers[0]!;

const docker = which('docker');
async function targetImageMissing(): Promise<string> {
  if (!docker) return 'no docker client';
  const img = await run(docker, ['image', 'inspect', '-f', '{{.Id}}', TARGET_IMAGE], { timeout: 15_000 });
  if (img.code !== 0) return `no Docker daemon or image ${TARGET_IMAGE} not built (bash docker/build.sh)`;
  return '';
}
const targetWhy = await targetImageMissing();
const initiatorsWhy = targetWhy === '' ? await dockerUnavailable() : targetWhy;
const useInitiatorsImage = initiatorsWhy === '' && process.env.GLFS_TOOLS_RUNNER !== 'host';
const hostToolsMissing = useInitiatorsImage ? [] : ['iscsi-readcapacity16', 'qemu-img'].filter((t) => !which(t));
// CI builds the image (.ci/run: docker/build.sh) whenever dockerd runs; without Docker there is no image to test.
const skip = targetWhy !== '' || (hostToolsMissing.length > 0 && !IS_CI);
if (targetWhy) console.warn(`[target image] skipped: ${targetWhy}`);

function ok(r: RunResult): RunResult {
  expect(r.code, describeRun(r)).toBe(0);
  return r;
}

describe.skipIf(skip)(`target image ${TARGET_IMAGE} (host network, initiators: ${useInitiatorsImage ? 'initiators image' : 'host tools'})`, () => {
  let tmp: ReturnType<typeof tempDir>;
  let etc: string;
  let luns: string;
  let portal: string;
  let container: import('testcontainers').StartedTestContainer;
  let tools: ToolRunner;
  const logs: string[] = [];
  const url = (iqn: string, secret: string) => `iscsi://${CHAP_USER}%${secret}@${portal}/${iqn}/0`;

  beforeAll(async () => {
    if (hostToolsMissing.length) throw new Error(`host tools missing: ${hostToolsMissing.join(', ')}`);
    tmp = tempDir('target-image-');
    etc = join(tmp.dir, 'etc');
    luns = join(tmp.dir, 'gluster');
    const secrets = join(tmp.dir, 'secrets');
    mkdirSync(etc);
    mkdirSync(secrets);
    mkdirSync(luns);
    portal = `127.0.0.1:${await freePort()}`;
    // The Secret's file as kubelet writes it, in its own mount as the DaemonSet has it.
    writeFileSync(join(secrets, 'chap-secret'), `${FILE_SECRET}\n`);
    chmodSync(join(secrets, 'chap-secret'), 0o400);
    // Any initiator with CHAP (qemu-img logs in as qemu's own name), and one initiator by name.
    const chap = (initiator: string, source: Record<string, string>) => ({ initiator, chap: { username: CHAP_USER, ...source } });
    writeFileSync(join(etc, 'target.json'), JSON.stringify({
      portals: [portal],
      targets: [
        { iqn: IQN_FILE, luns: [{ lun: 0, path: join(luns, 'file.img'), create: true, size: '64M' }], acl: [chap('*', { secretFile: `${SECRETS_DIR}/chap-secret` })] },
        { iqn: IQN_ENV, luns: [{ lun: 0, path: join(luns, 'env.img'), create: true, size: '32M' }], acl: [chap(INITIATOR, { secretEnv: 'GLFS_CHAP_SECRET' })] },
      ],
    }, null, 2));

    const { GenericContainer, Wait } = await import('testcontainers');
    container = await new GenericContainer(TARGET_IMAGE)
      .withNetworkMode('host')
      .withBindMounts([
        { source: etc, target: '/etc/glfs-target', mode: 'ro' },
        { source: secrets, target: SECRETS_DIR, mode: 'ro' },
        { source: luns, target: luns, mode: 'rw' },
      ])
      .withTmpFs({ '/run/glfs-target': 'rw,mode=0700' })
      .withDroppedCapabilities(...daemonSetContainer.securityContext.capabilities.drop)
      .withAddedCapabilities(...daemonSetContainer.securityContext.capabilities.add)
      .withSecurityOpt('no-new-privileges')
      .withEnvironment({ GLFS_CHAP_SECRET: ENV_SECRET })
      .withLabels({ 'org.glfs-target.test': 'target-image' })
      .withLogConsumer((stream) => stream.on('data', (d: Buffer | string) => logs.push(String(d))))
      .withWaitStrategy(Wait.forLogMessage(/"msg":"ready"/))
      .withStartupTimeout(60_000)
      .start();
    tools = useInitiatorsImage ? await containerRunner([tmp.dir]) : hostRunner();
  });

  afterAll(async () => {
    await tools?.close();
    await container?.stop({ timeout: 15_000, remove: true }).catch(() => undefined);
    tmp?.cleanup();
  });

  test('serve runs from the image with the default command: JSON logs, the config from /etc/glfs-target', () => {
    const all = logs.join('');
    expect(all).toContain('"configFile":"/etc/glfs-target/target.json"');
    expect(all).toMatch(/"msg":"portal listening"/);
    expect(all).not.toContain(FILE_SECRET);
    expect(all).not.toContain(ENV_SECRET);
  });

  test('CHAP with the secret from the mounted file: write 8 MiB, read it back, and it is in the host\'s file', async () => {
    const img = join(tmp.dir, 'rand.img');
    const data = randomBytes(8 * MiB);
    writeFileSync(img, data);
    ok(await tools.run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', img, url(IQN_FILE, FILE_SECRET)], { timeout: 120_000 }));
    const back = join(tmp.dir, 'back.img');
    ok(await tools.run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', url(IQN_FILE, FILE_SECRET), back], { timeout: 120_000 }));
    expect(readFileSync(back).subarray(0, 8 * MiB).equals(data)).toBe(true);
    // Through the bind mount: the container wrote the host's file, which kept its size.
    const onHost = readFileSync(join(luns, 'file.img'));
    expect(onHost.length).toBe(64 * MiB);
    expect(onHost.subarray(0, 8 * MiB).equals(data)).toBe(true);
  });

  test('CHAP with the secret from the environment; a wrong secret is refused', async () => {
    const rc = ok(await tools.run('iscsi-readcapacity16', ['-i', INITIATOR, url(IQN_ENV, ENV_SECRET)]));
    expect(rc.stdout).toMatch(new RegExp(`RETURNED LOGICAL BLOCK ADDRESS:${(32 * MiB) / 512 - 1}\\b`));
    const wrong = await tools.run('iscsi-readcapacity16', ['-i', INITIATOR, url(IQN_ENV, FILE_SECRET)]);
    expect(wrong.code, describeRun(wrong)).not.toBe(0);
  });

  test('glfs-target status in the container answers over the control socket in /run/glfs-target', async () => {
    const r = await container.exec(['glfs-target', 'status', '--json']);
    expect(r.exitCode, r.output).toBe(0);
    const status = JSON.parse(r.stdout) as { targets: { iqn: string; luns: { path: string }[] }[] };
    expect(status.targets.map((t) => t.iqn).sort()).toEqual([IQN_ENV, IQN_FILE]);
    expect(status.targets.flatMap((t) => t.luns.map((l) => l.path)).sort()).toEqual([join(luns, 'env.img'), join(luns, 'file.img')]);
  });

  test('SIGHUP reloads (what systemd\'s ExecReload and `docker kill -s HUP` send); SIGTERM stops it cleanly with exit 0', async () => {
    ok(await run(docker!, ['kill', '-s', 'HUP', container.getId()]));
    await expect.poll(() => logs.join(''), { timeout: 15_000 }).toContain('"msg":"configuration reloaded"');
    const stopped = await container.stop({ timeout: 15_000, remove: false });
    const code = await run(docker!, ['inspect', '-f', '{{.State.ExitCode}}', stopped.getId()]);
    await run(docker!, ['rm', '-f', stopped.getId()]);
    expect(code.stdout.trim()).toBe('0');
    expect(logs.join('')).toContain('"msg":"stopped"');
  });
});
