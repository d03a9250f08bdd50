/**
 * Initiator VM harness: builds (or finds in the cache) the Debian initiator VM, compiles the
 * guestfwd relay, boots the VM under qemu (KVM where it is real, TCG otherwise) with a network
 * that reaches ONLY the host's loopback, and drives it through the agent on a virtio-serial port:
 * every step is a bash script whose result comes back as one JSON line.
 *
 * Network: `-netdev user,restrict=on` (no NAT to anywhere) plus one
 * `guestfwd=tcp:10.0.2.<n>:PORT-cmd:relay PORT` per portal; the relay (relay.c) connects to
 * 127.0.0.1:PORT and nowhere else. The guest has a static 10.0.2.15/24, no default route, IPv6 off.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IS_CI, run, sleep, which } from '../e2e/harness.js';
import { IMAGE_VM, startQemuContainer } from '../containers/docker.js';

export const VM_DIR = dirname(fileURLToPath(import.meta.url));
export const VM_CACHE = process.env.GLFS_VM_CACHE ?? '/var/cache/glfs-target-vm';
export const GUEST_IP = '10.0.2.15';
/** Guest-side address of portal i (the guestfwd address the initiator connects to). */
export const portalIp = (i: number) => `10.0.2.${100 + i}`;

// ---------------------------------------------------------------------------------------------
// Timings log
// ---------------------------------------------------------------------------------------------

const TIMINGS = process.env.GLFS_VM_TIMINGS ?? join(VM_CACHE, 'timings.jsonl');

/** Appends one timing record (JSON line) to the timings log and echoes it to stdout. */
export function recordTiming(what: string, ms: number, extra: Record<string, unknown> = {}): void {
  const rec = { at: new Date().toISOString(), what, ms, ...extra };
  try {
    mkdirSync(dirname(TIMINGS), { recursive: true });
    appendFileSync(TIMINGS, `${JSON.stringify(rec)}\n`);
  } catch { /* the log is best effort */ }
  const shown = Array.isArray(extra.steps) ? { ...extra, steps: extra.steps.length } : extra;
  console.log(`[vm-timing] ${what}: ${(ms / 1000).toFixed(1)} s${Object.keys(shown).length ? ` ${JSON.stringify(shown)}` : ''}`);
}

// ---------------------------------------------------------------------------------------------
// Prerequisites, image, relay, accelerator
// ---------------------------------------------------------------------------------------------

export const VM_TOOLS = ['qemu-system-x86_64', 'debootstrap', 'cpio', 'zstd', 'cc'];

/** What is missing to build and boot the VM ('' when nothing). */
export function vmMissing(): string {
  if (defaultRunner() === 'docker') return which('docker') ? '' : "GLFS_VM_RUNNER=docker but no 'docker' client";
  const missing = VM_TOOLS.filter((t) => !which(t)).map((t) => `tool '${t}' not found`);
  if (process.getuid?.() !== 0) missing.push('not root (debootstrap needs it)');
  return missing.join('; ');
}

export interface VmImage {
  dir: string;
  kernel: string;
  initrd: string;
  manifest: Record<string, unknown>;
}

let imagePromise: Promise<VmImage> | undefined;

/** Builds the VM image unless the cache has it (keyed by the inputs; see build-image.sh). */
export function ensureVmImage(): Promise<VmImage> {
  imagePromise ??= (async () => {
    const t0 = Date.now();
    const r = await run('bash', [join(VM_DIR, 'build-image.sh')], { timeout: 20 * 60_000 });
    if (r.code !== 0) throw new Error(`VM image build failed (code ${r.code}):\n${r.stderr}\n${r.stdout}`);
    const dir = r.stdout.trim().split('\n').pop()!.trim();
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    if (!/cached/.test(r.stderr)) recordTiming('vm-image-build', Date.now() - t0, { key: manifest.key });
    return { dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), manifest };
  })();
  return imagePromise;
}

let relayPromise: Promise<string> | undefined;

/** Compiles relay.c once per content hash into the cache; returns the binary's path. */
export function ensureRelay(): Promise<string> {
  relayPromise ??= (async () => {
    const src = join(VM_DIR, 'relay.c');
    const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12);
    const bin = join(VM_CACHE, `relay-${hash}`);
    if (existsSync(bin)) return bin;
    mkdirSync(VM_CACHE, { recursive: true });
    const tmp = `${bin}.tmp${process.pid}`;
    const r = await run(which('cc') ?? 'cc', ['-O2', '-Wall', '-o', tmp, src], { timeout: 60_000 });
    if (r.code !== 0) throw new Error(`relay build failed:\n${r.stderr}`);
    await run('mv', ['-f', tmp, bin]);
    return bin;
  })();
  return relayPromise;
}

export type Accel = 'kvm' | 'tcg';

/**
 * KVM only where it is real. A PVM-backed /dev/kvm (module kvm_pvm) kills stock guest kernels
 * ("KVM internal error ... emulation failure"), so it means TCG. GLFS_VM_ACCEL=kvm|tcg overrides.
 */
export function detectAccel(): Accel {
  const forced = process.env.GLFS_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  if (existsSync('/sys/module/kvm_pvm')) return 'tcg';
  if (!existsSync('/dev/kvm')) return 'tcg';
  if (!existsSync('/sys/module/kvm_intel') && !existsSync('/sys/module/kvm_amd')) return 'tcg';
  try {
    // Readable and writable by us?
    readFileSync('/dev/kvm', { flag: 'r+' });
  } catch (e) {
    // EINVAL on read() means we could open it, which is all we need.
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL') return 'tcg';
  }
  return 'kvm';
}

// ---------------------------------------------------------------------------------------------
// The VM
// ---------------------------------------------------------------------------------------------

export interface VmPortal {
  /** Guest-side address of the guestfwd (default 10.0.2.{100+index}). */
  guestIp?: string;
  /** Port on both sides: the guest connects to guestIp:port, the relay to 127.0.0.1:port. */
  port: number;
}

export interface BootVmOpts {
  portals: VmPortal[];
  memMiB?: number;
  smp?: number;
  /** Label for logs and timings. */
  name?: string;
  /** Milliseconds to wait for the agent's ready event (default 180 s). */
  bootTimeoutMs?: number;
  /** Extra environment for the relays (RELAY_NO_QUICKACK=1 …). */
  relayEnv?: NodeJS.ProcessEnv;
  /**
   * 'host': the host's qemu, image from the cache. 'docker': qemu inside the initiators image
   * (docker/), started through testcontainers. Default: GLFS_VM_RUNNER, else 'host'.
   */
  runner?: VmRunner;
}

export type VmRunner = 'host' | 'docker';
export const defaultRunner = (): VmRunner => (process.env.GLFS_VM_RUNNER === 'docker' ? 'docker' : 'host');

export interface StepResult {
  code: number;
  /** Guest-side runtime of the script. */
  ms: number;
  out: string;
  err: string;
}

interface AgentReply {
  id?: number;
  event?: string;
  code?: number;
  ms?: number;
  out?: string;
  err?: string;
  [k: string]: unknown;
}

export class Vm {
  private sock: Socket | undefined;
  private buf = '';
  private nextId = 1;
  private waiting = new Map<number, (r: AgentReply) => void>();
  private events: AgentReply[] = [];
  private exitInfo: string | undefined;
  private exitPromise: Promise<void>;
  private stderr = '';
  readonly dir: string;
  /** Every step run, with its result (for failure messages and the timings log). */
  readonly steps: Array<{ name: string; result: StepResult }> = [];
  bootMs = 0;
  kernel = '';
  private stopped = false;

  private constructor(
    private readonly qemu: ChildProcess,
    dir: string,
    readonly accel: Accel,
    readonly name: string,
    readonly runner: VmRunner,
    private readonly stopContainer?: () => Promise<void>,
  ) {
    this.dir = dir;
    qemu.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString('utf8'); });
    qemu.stdout!.on('data', (d: Buffer) => { this.stderr += d.toString('utf8'); });
    this.exitPromise = new Promise((res) => {
      qemu.on('exit', (code, signal) => {
        this.exitInfo = `qemu exited code=${code} signal=${signal}`;
        for (const w of this.waiting.values()) w({ code: -1, out: '', err: this.exitInfo, ms: 0 });
        this.waiting.clear();
        res();
      });
      qemu.on('error', (e) => { this.exitInfo = `qemu spawn error: ${e.message}`; res(); });
    });
  }

  static async boot(opts: BootVmOpts): Promise<Vm> {
    const runner = opts.runner ?? defaultRunner();
    const { kernel, initrd, relay } = runner === 'docker'
      ? IMAGE_VM
      : await Promise.all([ensureVmImage(), ensureRelay()]).then(([img, rel]) => ({ kernel: img.kernel, initrd: img.initrd, relay: rel }));
    // Inside a container /dev/kvm is not passed through (no privileges): always TCG there.
    const accel = runner === 'docker' ? 'tcg' : detectAccel();
    const name = opts.name ?? 'vm';
    const dir = mkdtempSync(join(tmpdir(), `glfs-vm-${name}-`));
    const sockPath = join(dir, 'agent.sock');
    const fwd = opts.portals.map((p, i) => {
      const ip = p.guestIp ?? portalIp(i);
      // slirp spawns `relay PORT LOG` per guest connection; the relay connects to 127.0.0.1:PORT only.
      return `guestfwd=tcp:${ip}:${p.port}-cmd:${relay} ${p.port} ${join(dir, 'relay.log')}`;
    });
    const netdev = ['user', 'id=n0', 'restrict=on', 'ipv6=off', 'net=10.0.2.0/24', 'host=10.0.2.2', ...fwd].join(',');
    const smp = opts.smp ?? 1;
    const append = ['console=ttyS0', 'loglevel=4', 'panic=-1', 'ipv6.disable=1', `glfs.ip=${GUEST_IP}/24`,
      'rdinit=/init', 'tsc=reliable', 'mitigations=off'].join(' ');
    const args = [
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-machine', 'q35', '-m', String(opts.memMiB ?? 1024), '-smp', String(smp),
      ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,thread=${smp > 1 ? 'multi' : 'single'}`, '-cpu', 'max']),
      '-kernel', kernel, '-initrd', initrd, '-append', append,
      '-serial', `file:${join(dir, 'console.log')}`,
      '-device', 'virtio-serial-pci',
      '-chardev', `socket,id=agent,path=${sockPath},server=on,wait=off`,
      '-device', 'virtserialport,chardev=agent,name=glfs.agent',
      '-netdev', netdev,
      '-device', 'virtio-net-pci,netdev=n0,romfile=',
      '-device', 'virtio-rng-pci',
    ];
    const t0 = Date.now();
    let qemu: ChildProcess;
    let stopContainer: (() => Promise<void>) | undefined;
    if (runner === 'docker') {
      if (opts.relayEnv && Object.keys(opts.relayEnv).length) throw new Error('relayEnv is not supported with the docker runner');
      const c = await startQemuContainer(args, dir, name);
      qemu = c.follow;
      stopContainer = c.stop;
    } else {
      qemu = spawn(which('qemu-system-x86_64') ?? 'qemu-system-x86_64', args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...(opts.relayEnv ?? {}) },
      });
    }
    liveVms.add(qemu);
    qemu.on('exit', () => liveVms.delete(qemu));
    const vm = new Vm(qemu, dir, accel, name, runner, stopContainer);
    try {
      await vm.connectAgent(sockPath, opts.bootTimeoutMs ?? 180_000);
      const ready = await vm.waitEvent('ready', opts.bootTimeoutMs ?? 180_000);
      vm.kernel = String(ready.kernel ?? '');
      await vm.put('/run/steps.sh', readFileSync(join(VM_DIR, 'lib', 'steps.sh')));
    } catch (e) {
      const msg = `${(e as Error).message}\n${vm.diagnostics()}`;
      await vm.stop();
      throw new Error(msg);
    }
    vm.bootMs = Date.now() - t0;
    recordTiming('vm-boot', vm.bootMs, { name, accel, runner, kernel: vm.kernel });
    return vm;
  }

  private async connectAgent(path: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exitInfo) throw new Error(this.exitInfo);
      const s = await new Promise<Socket | undefined>((res) => {
        const c = connect(path);
        c.once('connect', () => res(c));
        c.once('error', () => { c.destroy(); res(undefined); });
      });
      if (s) {
        this.sock = s;
        s.setEncoding('utf8');
        s.on('data', (d: string) => this.onData(d));
        s.on('error', () => undefined);
        return;
      }
      if (Date.now() > deadline) throw new Error(`agent socket ${path} not available`);
      await sleep(100);
    }
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      let msg: AgentReply;
      try {
        msg = JSON.parse(line) as AgentReply;
      } catch {
        continue;
      }
      if (msg.event) this.events.push(msg);
      else if (typeof msg.id === 'number') {
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        w?.(msg);
      }
    }
  }

  private async waitEvent(name: string, timeoutMs: number): Promise<AgentReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex((e) => e.event === name);
      if (i >= 0) return this.events.splice(i, 1)[0]!;
      if (this.exitInfo) throw new Error(this.exitInfo);
      if (Date.now() > deadline) throw new Error(`no '${name}' event from the VM agent within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /**
   * Runs a bash script in the guest (as root, cwd /) and returns its result. Never rejects for a
   * non-zero exit; a host-side timeout gives code -2.
   */
  async sh(script: string, opts: { timeoutS?: number; name?: string } = {}): Promise<StepResult> {
    const timeoutS = opts.timeoutS ?? 120;
    if (!this.sock || this.exitInfo) return { code: -1, ms: 0, out: '', err: this.exitInfo ?? 'agent not connected' };
    const id = this.nextId++;
    const b64 = Buffer.from(`[ -f /run/steps.sh ] && . /run/steps.sh\n${script}`, 'utf8').toString('base64');
    const reply = await new Promise<AgentReply>((res) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        res({ code: -2, ms: timeoutS * 1000, out: '', err: `host-side timeout after ${timeoutS + 15} s` });
      }, (timeoutS + 15) * 1000);
      this.waiting.set(id, (r) => { clearTimeout(timer); res(r); });
      this.sock!.write(`${id} ${timeoutS} ${b64}\n`);
    });
    const result: StepResult = {
      code: reply.code ?? -1,
      ms: reply.ms ?? 0,
      out: reply.out ? Buffer.from(reply.out, 'base64').toString('utf8') : '',
      err: reply.err ? Buffer.from(reply.err, 'base64').toString('utf8') : '',
    };
    this.steps.push({ name: opts.name ?? script.split('\n')[0]!.slice(0, 60), result });
    return result;
  }

  /** Like sh() but throws with the full transcript unless the script exits 0. */
  async ok(script: string, opts: { timeoutS?: number; name?: string } = {}): Promise<StepResult> {
    const r = await this.sh(script, opts);
    if (r.code !== 0) throw new Error(`guest step failed: ${describeStep(script, r)}\n${this.diagnostics(20)}`);
    return r;
  }

  /** Runs a step that prints ONE JSON object on its last stdout line; returns it parsed. */
  async json<T = Record<string, unknown>>(script: string, opts: { timeoutS?: number; name?: string } = {}): Promise<T & { _step: StepResult }> {
    const r = await this.sh(script, opts);
    const last = r.out.trim().split('\n').pop() ?? '';
    let parsed: T;
    try {
      parsed = JSON.parse(last) as T;
    } catch {
      throw new Error(`guest step printed no JSON result: ${describeStep(script, r)}\n${this.diagnostics(20)}`);
    }
    return Object.assign(parsed as object, { _step: r }) as T & { _step: StepResult };
  }

  /** Writes a file in the guest. */
  async put(path: string, content: string | Buffer, mode = '0644'): Promise<void> {
    const b64 = Buffer.from(content).toString('base64');
    await this.ok(`mkdir -p "$(dirname '${path}')" && base64 -d > '${path}' <<'EOF'\n${b64.replace(/(.{76})/g, '$1\n')}\nEOF\nchmod ${mode} '${path}'`, { name: `put ${path}` });
  }

  consoleLog(): string {
    try {
      return readFileSync(join(this.dir, 'console.log'), 'utf8');
    } catch {
      return '';
    }
  }

  relayLog(): string {
    try {
      return readFileSync(join(this.dir, 'relay.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Tail of the guest console + qemu stderr, for failure messages. */
  diagnostics(lines = 60): string {
    const tail = (s: string) => s.split('\n').slice(-lines).join('\n');
    return `--- qemu (${this.accel}) stderr ---\n${tail(this.stderr)}\n--- guest console (tail) ---\n${tail(this.consoleLog())}` +
      `\n--- relay log (tail) ---\n${tail(this.relayLog())}`;
  }

  running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Kills qemu (the guest keeps no state worth a clean shutdown) and removes the temp dir. */
  async stop(keepDir = false): Promise<void> {
    if (this.steps.length && !this.stopped) {
      // One record per VM with every guest step's runtime: where the scenario time goes.
      recordTiming(`vm-steps-${this.name}`, this.steps.reduce((a, s) => a + s.result.ms, 0), {
        runner: this.runner, steps: this.steps.map((s) => [s.name, s.result.ms, s.result.code]),
      });
    }
    this.stopped = true;
    this.sock?.destroy();
    if (this.stopContainer) await this.stopContainer();
    if (this.exitInfo === undefined) {
      this.qemu.kill('SIGTERM');
      const t = setTimeout(() => this.qemu.kill('SIGKILL'), 5000);
      await this.exitPromise;
      clearTimeout(t);
    }
    if (!keepDir && !process.env.GLFS_VM_KEEP) rmSync(this.dir, { recursive: true, force: true });
  }
}

const liveVms = new Set<ChildProcess>();
process.once('exit', () => {
  for (const q of liveVms) q.kill('SIGKILL');
});

export function describeStep(script: string, r: StepResult): string {
  return `\n$ ${script}\n-> code=${r.code} (${r.ms} ms)\n--- stdout ---\n${r.out}\n--- stderr ---\n${r.err}`;
}

/** Skip outside CI when the VM cannot be built/booted here; fail in CI. */
export function vmPrereqs(extra = ''): { skip: boolean; reason: string; assert(): void } {
  const reason = [vmMissing(), extra].filter(Boolean).join('; ');
  if (reason && !IS_CI) console.warn(`[vm] skipping: ${reason}`);
  return {
    skip: reason !== '' && !IS_CI,
    reason,
    assert() {
      if (reason) throw new Error(`VM prerequisites missing (CI=${IS_CI}): ${reason}`);
    },
  };
}
