/**
 * A real gluster replica-3 volume for the tests, all on this machine, started by hand (no systemd).
 *
 * glusterd, the three brick daemons and the FUSE client all live in a network namespace of their
 * own ("glfs-gluster"), whose only non-loopback address 10.231.77.2/32 sits on that namespace's lo
 * (gluster refuses 127.x brick addresses). So no gluster packet ever leaves this machine, or even
 * that namespace. The FUSE mount itself is made in the root mount namespace (nsenter --net only),
 * so glfs-target, running normally, serves a LUN file from it.
 *
 * glusterd runs with its own working directory under the run's base dir (not /var/lib/glusterd).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeRun, run, sleep, which, type RunResult } from '../e2e/harness.js';

export const GLUSTER_NS = 'glfs-gluster';
export const GLUSTER_IP = '10.231.77.2';
export const GLUSTER_TOOLS = ['glusterd', 'gluster', 'glusterfs', 'mount.glusterfs', 'nsenter', 'ip', 'iptables'];
/** Namespaces of gluster clients with a network link of their own (GlusterVolume.mountOverLink). */
const LINK_NS_PREFIX = 'glfs-node';
const BASE = process.env.GLFS_GLUSTER_BASE ?? '/var/lib/glfs-target-gluster';

const nsExec = (cmd: string, args: string[], timeout = 60_000, ns = GLUSTER_NS) =>
  run(which('nsenter') ?? 'nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args], { timeout });

async function ok(p: Promise<RunResult>): Promise<RunResult> {
  const r = await p;
  if (r.code !== 0) throw new Error(`gluster setup step failed:\n${describeRun(r)}`);
  return r;
}

/** The network link between one node's gluster client and every brick (GlusterVolume.mountOverLink). */
export interface ClientLink {
  /** Drop every packet both ways, silently (as a failed switch would): no reset, no error. */
  cut(): Promise<void>;
  /** Let packets through again. */
  heal(): Promise<void>;
}

export interface BrickStatus { path: string; pid: number; online: boolean; }

export interface VolumeOptions {
  /** Put each brick on a tmpfs of this many MiB (a volume that fills up; no loop device needed). */
  brickMiB?: number;
}

export class GlusterVolume {
  readonly bricks: string[];
  readonly mount: string;

  private constructor(readonly name: string, readonly dir: string) {
    this.bricks = [1, 2, 3].map((i) => join(dir, `brick${i}`));
    this.mount = join(dir, 'mnt');
  }

  /** `gluster --mode=script ARGS` inside the namespace. */
  cli(...args: string[]): Promise<RunResult> {
    return nsExec(which('gluster') ?? 'gluster', ['--mode=script', ...args], 120_000);
  }

  /**
   * Starts glusterd (in the namespace, private working dir), creates and starts a replica-3 volume
   * from three bricks on this host (force: same host, root partition), FUSE-mounts it.
   */
  static async create(name = `glfs-e2e-${process.pid}`, opts: VolumeOptions = {}): Promise<GlusterVolume> {
    const dir = join(BASE, name);
    await GlusterVolume.teardownAll();
    mkdirSync(dir, { recursive: true });
    const v = new GlusterVolume(name, dir);
    for (const b of v.bricks) {
      mkdirSync(b, { recursive: true });
      if (opts.brickMiB !== undefined) await ok(run('mount', ['-t', 'tmpfs', '-o', `size=${opts.brickMiB}m`, 'tmpfs', b]));
    }
    mkdirSync(v.mount, { recursive: true });

    // Namespace with one address on its loopback device.
    await ok(run('ip', ['netns', 'add', GLUSTER_NS]));
    await ok(run('ip', ['-n', GLUSTER_NS, 'link', 'set', 'lo', 'up']));
    await ok(run('ip', ['-n', GLUSTER_NS, 'addr', 'add', `${GLUSTER_IP}/32`, 'dev', 'lo']));

    // glusterd with a private working directory (a copy of the stock volfile with that one change).
    const workdir = join(BASE, 'glusterd');
    mkdirSync(workdir, { recursive: true });
    const stock = existsSync('/etc/glusterfs/glusterd.vol') ? readFileSync('/etc/glusterfs/glusterd.vol', 'utf8') : '';
    const vol = stock.includes('working-directory')
      ? stock.replace(/option working-directory .*/, `option working-directory ${workdir}`)
      : `volume management\n    type mgmt/glusterd\n    option working-directory ${workdir}\n    option transport-type socket\nend-volume\n`;
    writeFileSync(join(BASE, 'glusterd.vol'), vol);
    await ok(nsExec(which('glusterd') ?? 'glusterd', ['-f', join(BASE, 'glusterd.vol'), '-p', join(BASE, 'glusterd.pid'),
      `--log-file=${join(BASE, 'glusterd.log')}`]));
    for (let i = 0; ; i++) {
      const r = await v.cli('volume', 'list');
      if (r.code === 0) break;
      if (i > 100) throw new Error(`glusterd did not answer:\n${describeRun(r)}\n${v.log()}`);
      await sleep(200);
    }
    await ok(v.cli('volume', 'create', name, 'replica', '3', ...v.bricks.map((b) => `${GLUSTER_IP}:${b}`), 'force'));
    // The seed's setting, plus the usual ones for block-device files (no client-side caching of data).
    for (const [k, val] of [['server.allow-insecure', 'on'], ['performance.quick-read', 'off'], ['performance.read-ahead', 'off'],
      ['performance.io-cache', 'off'], ['performance.stat-prefetch', 'off'], ['performance.open-behind', 'off'],
      ['performance.strict-o-direct', 'on'], ['network.remote-dio', 'disable'], ['cluster.quorum-type', 'auto'],
      ['cluster.heal-timeout', '10']]) {
      await ok(v.cli('volume', 'set', name, k!, val!));
    }
    await ok(v.cli('volume', 'start', name));
    await ok(nsExec('mount', ['-t', 'glusterfs', `${GLUSTER_IP}:/${name}`, v.mount]));
    const m = await run('findmnt', ['-n', '-o', 'FSTYPE', v.mount]);
    if (m.stdout.trim() !== 'fuse.glusterfs') throw new Error(`volume not mounted at ${v.mount}: ${describeRun(m)}`);
    return v;
  }

  /**
   * Mounts the volume once more at `dir`: another gluster client (its own glusterfs process), as a
   * second or third gluster node would have. Unmounted by stop().
   */
  async mountClient(dir: string): Promise<void> {
    // A mount whose client died answers ENOTCONN until it is unmounted.
    await run('umount', ['-l', dir], { timeout: 30_000 });
    mkdirSync(dir, { recursive: true });
    await ok(nsExec('mount', ['-t', 'glusterfs', `${GLUSTER_IP}:/${this.name}`, dir]));
    const m = await run('findmnt', ['-n', '-o', 'FSTYPE', dir]);
    if (m.stdout.trim() !== 'fuse.glusterfs') throw new Error(`volume not mounted at ${dir}: ${describeRun(m)}`);
  }

  /**
   * The volume as `nodes` gluster nodes would see it, for multi-node serving: the options
   * docs/high-availability.md requires (strict locks, no write-behind; short timeouts), and
   * one FUSE mount — one gluster client — per node (the first is `mount`).
   */
  async nodeMounts(nodes: number): Promise<string[]> {
    // A silent node is dropped by its peers after ping-timeout (client side) and by the bricks
    // after TCP keepalive (server side), which is what releases its locks.
    for (const [k, v] of [['client.strict-locks', 'on'], ['performance.write-behind', 'off'], ['network.ping-timeout', '10'],
      ['server.keepalive-time', '5'], ['server.keepalive-interval', '2'], ['server.keepalive-count', '3'], ['server.tcp-user-timeout', '10']]) {
      await ok(this.cli('volume', 'set', this.name, k!, v!));
    }
    const mounts = [this.mount];
    for (let i = 2; i <= nodes; i++) {
      const m = join(this.dir, `mnt${i}`);
      await this.mountClient(m);
      mounts.push(m);
    }
    return mounts;
  }

  /**
   * Mounts the volume at `dir` with a client in a network namespace of its own (glfs-nodeN),
   * joined to the bricks' namespace by a veth pair: cutting that link partitions this node's
   * gluster client from every brick, while everything else (glfs-target, its initiators) still
   * reaches it. Mounting again at `dir` reuses the link. Unmounted and removed by stop().
   */
  async mountOverLink(dir: string, n: number): Promise<ClientLink> {
    const ns = `${LINK_NS_PREFIX}${n}`;
    const [inner, outer] = [`glfsn${n}`, `glfsg${n}`];
    const [innerIp, outerIp] = [`10.231.78.${4 * n + 2}`, `10.231.78.${4 * n + 1}`];
    if ((await run('ip', ['netns', 'pids', ns])).code !== 0) {
      await ok(run('ip', ['netns', 'add', ns]));
      await ok(run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']));
      await ok(run('ip', ['link', 'add', inner, 'netns', ns, 'type', 'veth', 'peer', 'name', outer, 'netns', GLUSTER_NS]));
      await ok(run('ip', ['-n', ns, 'addr', 'add', `${innerIp}/30`, 'dev', inner]));
      await ok(run('ip', ['-n', GLUSTER_NS, 'addr', 'add', `${outerIp}/30`, 'dev', outer]));
      await ok(run('ip', ['-n', ns, 'link', 'set', inner, 'up']));
      await ok(run('ip', ['-n', GLUSTER_NS, 'link', 'set', outer, 'up']));
      await ok(run('ip', ['-n', ns, 'route', 'add', `${GLUSTER_IP}/32`, 'via', outerIp]));
    }
    await run('umount', ['-l', dir], { timeout: 30_000 });
    mkdirSync(dir, { recursive: true });
    await ok(nsExec('mount', ['-t', 'glusterfs', `${GLUSTER_IP}:/${this.name}`, dir], 60_000, ns));
    const m = await run('findmnt', ['-n', '-o', 'FSTYPE', dir]);
    if (m.stdout.trim() !== 'fuse.glusterfs') throw new Error(`volume not mounted at ${dir}: ${describeRun(m)}`);
    const rules = (op: '-I' | '-D') => Promise.all([
      ok(nsExec('iptables', [op, 'INPUT', '-i', inner, '-j', 'DROP'], 30_000, ns)),
      ok(nsExec('iptables', [op, 'INPUT', '-i', outer, '-j', 'DROP'], 30_000, GLUSTER_NS)),
    ]).then(() => undefined);
    return { cut: () => rules('-I'), heal: () => rules('-D') };
  }

  /** Pid of the glusterfs client process serving the FUSE mount at `dir` (undefined if none). */
  async clientPid(dir: string): Promise<number | undefined> {
    const r = await run('pgrep', ['-f', `glusterfs.*${dir}$`]);
    const pids = r.stdout.split('\n').map(Number).filter((n) => n > 0);
    return pids[0];
  }

  log(): string {
    try {
      return readFileSync(join(BASE, 'glusterd.log'), 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '';
    }
  }

  /** Brick processes from `gluster volume status NAME --xml`. */
  async brickStatus(): Promise<BrickStatus[]> {
    const r = await ok(this.cli('volume', 'status', this.name, '--xml'));
    const out: BrickStatus[] = [];
    for (const m of r.stdout.matchAll(/<node>([\s\S]*?)<\/node>/g)) {
      const n = m[1]!;
      const path = /<path>([^<]*)<\/path>/.exec(n)?.[1] ?? '';
      if (!this.bricks.includes(path)) continue;
      out.push({ path, pid: Number(/<pid>(-?\d+)<\/pid>/.exec(n)?.[1] ?? -1), online: /<status>1<\/status>/.test(n) });
    }
    return out;
  }

  /** SIGKILLs the brick daemon of brick i (0-based). Returns its pid. */
  async killBrick(i: number): Promise<number> {
    return (await this.killBricks([i]))[0]!;
  }

  /** SIGKILLs bricks `indices` at once (one status query first, then the kills back to back); their pids. */
  async killBricks(indices: readonly number[]): Promise<number[]> {
    const status = await this.brickStatus();
    const pids = indices.map((i) => {
      const b = status.find((s) => s.path === this.bricks[i]);
      if (!b || b.pid <= 0) throw new Error(`brick ${i} has no pid: ${JSON.stringify(status)}`);
      return b.pid;
    });
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    return pids;
  }

  /** Restarts dead bricks (`volume start force`) and triggers a heal. */
  async restartBricksAndHeal(): Promise<void> {
    await ok(this.cli('volume', 'start', this.name, 'force'));
    for (let i = 0; i < 100; i++) {
      if ((await this.brickStatus()).every((s) => s.online)) break;
      await sleep(300);
    }
    // Right after a brick returns, the self-heal daemon may not have reconnected yet and the heal
    // launch fails ("brick op 'Heal' failed"): retry for a while.
    let last: RunResult | undefined;
    for (let i = 0; i < 60; i++) {
      last = await this.cli('volume', 'heal', this.name);
      if (last.code === 0) return;
      await sleep(1000);
    }
    throw new Error(`gluster volume heal kept failing:\n${describeRun(last!)}`);
  }

  /** Sum of "Number of entries" over the bricks in `volume heal NAME info` (-1 if unreadable). */
  async pendingHeals(): Promise<number> {
    const r = await this.cli('volume', 'heal', this.name, 'info');
    const counts = [...r.stdout.matchAll(/Number of entries: (\d+|-)/g)].map((m) => (m[1] === '-' ? NaN : Number(m[1])));
    if (r.code !== 0 || counts.length !== 3 || counts.some((c) => Number.isNaN(c))) return -1;
    return counts.reduce((a, c) => a + c, 0);
  }

  async stop(): Promise<void> {
    const mounts = (await run('findmnt', ['-rn', '-t', 'fuse.glusterfs', '-o', 'TARGET'])).stdout.split('\n').filter((m) => m.startsWith(this.dir));
    for (const m of mounts) await run('umount', ['-l', m], { timeout: 30_000 });
    await this.cli('volume', 'stop', this.name, 'force');
    await this.cli('volume', 'delete', this.name);
    await GlusterVolume.teardownAll();
    if (!process.env.GLFS_GLUSTER_KEEP) rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Removes whatever a previous (possibly crashed) run left: FUSE mounts under the base dir,
   * gluster processes in OUR namespace (found by namespace, never by name), the namespace itself.
   */
  static async teardownAll(): Promise<void> {
    const mounts = (await run('findmnt', ['-rn', '-t', 'fuse.glusterfs', '-o', 'TARGET'])).stdout.split('\n').filter((m) => m.startsWith(BASE));
    for (const m of mounts) await run('umount', ['-l', m], { timeout: 30_000 });
    const nsPids = (await run('ip', ['netns', 'pids', GLUSTER_NS])).stdout.split('\n').map(Number).filter((n) => n > 0);
    for (const pid of nsPids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    if (nsPids.length) await sleep(500);
    // Small bricks (VolumeOptions.brickMiB) are tmpfs mounts: unmount them once their daemons are gone.
    const tmpfs = (await run('findmnt', ['-rn', '-t', 'tmpfs', '-o', 'TARGET'])).stdout.split('\n').filter((m) => m.startsWith(BASE));
    for (const m of tmpfs) await run('umount', ['-l', m], { timeout: 30_000 });
    await run('ip', ['netns', 'del', GLUSTER_NS]);
    const linked = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(LINK_NS_PREFIX));
    for (const ns of linked) {
      for (const pid of (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').map(Number).filter((n) => n > 0)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await run('ip', ['netns', 'del', ns]);
    }
    // Volume definitions from earlier runs live in the private working dir: start clean.
    rmSync(join(BASE, 'glusterd'), { recursive: true, force: true });
  }
}

export function glusterMissing(): string {
  const missing = GLUSTER_TOOLS.filter((t) => !which(t)).map((t) => `tool '${t}' not found`);
  if (!existsSync('/dev/fuse')) missing.push('/dev/fuse missing');
  return missing.join('; ');
}
