/**
 * The initiator image (docker/initiators.Dockerfile, built by docker/build.sh) started through
 * testcontainers with host networking, and a ToolRunner that runs initiator tools either inside
 * that container or, where Docker is absent, on the host. The same tests use both.
 *
 * testcontainers settings for this machine: no Ryuk (its image would have to come from a
 * registry), the Docker host is localhost, and no container is ever privileged.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { run, which, type RunOptions, type RunResult } from '../e2e/harness.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';

export const INITIATORS_IMAGE = process.env.GLFS_INITIATORS_IMAGE ?? 'glfs-target/initiators:latest';
/** Paths inside the initiators image. */
export const IMAGE_VM = { kernel: '/opt/glfs-vm/image/vmlinuz', initrd: '/opt/glfs-vm/image/initrd.img', relay: '/opt/glfs-vm/relay' };

/** Resolves whether a Docker daemon answers and the initiators image exists ('' = yes, else why not). */
export async function dockerUnavailable(): Promise<string> {
  const docker = which('docker');
  if (!docker) return 'no docker client';
  const info = await run(docker, ['info', '--format', '{{.ServerVersion}}'], { timeout: 15_000 });
  if (info.code !== 0) return `no Docker daemon (${info.stderr.trim().split('\n')[0]})`;
  const img = await run(docker, ['image', 'inspect', '-f', '{{.Id}}', INITIATORS_IMAGE], { timeout: 15_000 });
  if (img.code !== 0) return `image ${INITIATORS_IMAGE} not built (bash docker/build.sh)`;
  return '';
}

// No Ryuk: remove our containers ourselves if the test process exits without stopping them.
const liveContainers = new Set<string>();
process.once('exit', () => {
  if (liveContainers.size) spawnSync(which('docker') ?? 'docker', ['rm', '-f', ...liveContainers], { stdio: 'ignore', timeout: 20_000 });
});

type Tc = typeof import('testcontainers');
let tc: Promise<Tc> | undefined;
const testcontainers = () => (tc ??= import('testcontainers'));

export interface StartedInitiators {
  id: string;
  exec(cmd: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  stop(): Promise<void>;
}

/**
 * Starts the initiators image through testcontainers: host network (so 127.0.0.1 is the host's
 * loopback and nothing else is reachable that the host could not reach), never privileged,
 * optional bind mounts (same path inside and out), optional command (default: sleep infinity).
 */
export async function startInitiators(opts: { command?: string[]; binds?: string[]; name?: string } = {}): Promise<StartedInitiators> {
  const { GenericContainer, Wait } = await testcontainers();
  let c = new GenericContainer(INITIATORS_IMAGE)
    .withNetworkMode('host')
    .withBindMounts((opts.binds ?? []).map((p) => ({ source: p, target: p, mode: 'rw' as const })))
    .withLabels({ 'org.glfs-target.test': opts.name ?? 'initiators' })
    // No ports to wait for on a host-network container: the port strategy returns at once.
    .withWaitStrategy(Wait.forListeningPorts())
    .withStartupTimeout(60_000);
  if (opts.command) c = c.withCommand(opts.command);
  const started = await c.start();
  liveContainers.add(started.getId());
  return {
    id: started.getId(),
    async exec(cmd, eopts = {}) {
      const t0 = Date.now();
      const timeout = eopts.timeoutMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([
        started.exec(cmd),
        new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), timeout); }),
      ]);
      clearTimeout(timer);
      const pretty = `[container] ${cmd.join(' ')}`;
      if (!res) {
        return { cmd: pretty, code: null, signal: null, stdout: '', stderr: '', stdoutBuf: Buffer.alloc(0), timedOut: true, durationMs: Date.now() - t0 };
      }
      return {
        cmd: pretty, code: res.exitCode, signal: null, stdout: res.stdout, stderr: res.stderr,
        stdoutBuf: Buffer.from(res.stdout, 'latin1'), timedOut: false, durationMs: Date.now() - t0,
      };
    },
    async stop() {
      await started.stop({ timeout: 2_000, remove: true });
      liveContainers.delete(started.getId());
    },
  };
}

/**
 * Starts qemu inside an initiators container (the VM harness's docker runner). Returns a child
 * process that follows the container's output and exits when the container does, and a stop().
 */
export async function startQemuContainer(qemuArgs: string[], dir: string, name: string): Promise<{ follow: ChildProcess; stop: () => Promise<void>; id: string }> {
  const c = await startInitiators({ command: ['qemu-system-x86_64', ...qemuArgs], binds: [dir], name: `vm-${name}` });
  const follow = spawn(which('docker') ?? 'docker', ['logs', '-f', c.id], { stdio: ['ignore', 'pipe', 'pipe'] });
  return { follow, stop: () => c.stop().catch(() => undefined), id: c.id };
}

// ---------------------------------------------------------------------------------------------
// ToolRunner: the same commands in the container or on the host
// ---------------------------------------------------------------------------------------------

export interface ToolRunner {
  kind: 'container' | 'host';
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  close(): Promise<void>;
}

export async function containerRunner(binds: string[] = []): Promise<ToolRunner> {
  const c = await startInitiators({ name: 'tools', binds });
  return {
    kind: 'container',
    run: (cmd, args, opts = {}) => c.exec([cmd, ...args], { timeoutMs: opts.timeout ?? 60_000 }),
    close: () => c.stop(),
  };
}

export function hostRunner(): ToolRunner {
  return { kind: 'host', run: (cmd, args, opts) => run(which(cmd) ?? cmd, args, opts), close: async () => undefined };
}
