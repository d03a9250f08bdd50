/**
 * End-to-end test harness: start/stop glfs-target (built, from dist/) or tgtd as a reference
 * target, run external initiator tools with hard timeouts, and decide whether a prerequisite
 * that is missing means "skip" (developer machine) or "fail" (CI=true).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsc, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GLFS_BIN = join(REPO_ROOT, 'bin', 'glfs-target.js');
export const GLFS_ENTRY = join(REPO_ROOT, 'dist', 'cli.js');
export const DEFAULT_IQN = 'iqn.2016-06.org.gluster:e2e';
export const TGT_DEFAULT_IQN = 'iqn.2016-06.org.gluster:tgt-ref';
/** Initiator name used by the e2e tests wherever a tool accepts one. */
export const INITIATOR = 'iqn.2007-10.com.example:e2e-init';
export const IS_CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

// ---------------------------------------------------------------------------------------------
// Running external commands
// ---------------------------------------------------------------------------------------------

export interface RunResult {
  cmd: string;
  /** Exit code, or null when the process died from a signal / could not be spawned. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Raw stdout (some tools print binary designators with %s). */
  stdoutBuf: Buffer;
  timedOut: boolean;
  durationMs: number;
  /** Spawn error (e.g. ENOENT), if any. */
  error?: string;
}

export interface RunOptions {
  /** Milliseconds before the process is killed (SIGTERM, then SIGKILL 2 s later). Default 30 s. */
  timeout?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Runs a command to completion; never rejects and never hangs past `timeout` (+2 s). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeout = opts.timeout ?? 30_000;
  const started = Date.now();
  const pretty = [cmd, ...args].map(shellQuote).join(' ');
  return new Promise((resolvePromise) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (e) {
      resolvePromise({
        cmd: pretty, code: null, signal: null, stdout: '', stderr: '', stdoutBuf: Buffer.alloc(0),
        timedOut: false, durationMs: 0, error: String(e),
      });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let spawnError: string | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 2000);
    }, timeout);
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => { spawnError = e.message; });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => { /* process may exit before reading everything */ });
      child.stdin!.end(opts.input);
    }
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      const stdoutBuf = Buffer.concat(out);
      resolvePromise({
        cmd: pretty, code, signal, stdoutBuf,
        stdout: stdoutBuf.toString('latin1'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut, durationMs: Date.now() - started,
        ...(spawnError !== undefined ? { error: spawnError } : {}),
      });
    });
  });
}

/** Formats a RunResult for assertion messages. */
export function describeRun(r: RunResult): string {
  return `$ ${r.cmd}\n-> code=${r.code} signal=${r.signal} timedOut=${r.timedOut}` +
    `${r.error ? ` error=${r.error}` : ''} (${r.durationMs} ms)\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Like run() but throws (with full output) unless the command exits 0. */
export async function runOk(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`command failed:\n${describeRun(r)}`);
  return r;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// Prerequisites: skip locally, fail in CI
// ---------------------------------------------------------------------------------------------

const EXTRA_PATH = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** Absolute path of an executable on PATH (plus sbin dirs), or undefined. */
export function which(tool: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_PATH].filter(Boolean);
  for (const d of dirs) {
    const p = join(d, tool);
    try {
      accessSync(p, fsc.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

export interface Prereqs {
  /** True when the suite should be skipped (only ever true outside CI). */
  skip: boolean;
  /** Human-readable list of what is missing ('' when nothing). */
  reason: string;
  /** Call in beforeAll: throws when something is missing (only reachable in CI, where we never skip). */
  assert(): void;
}

/**
 * Checks external tools and (optionally) the built server. Outside CI a missing prerequisite skips
 * the suite; with CI=true it does not skip and assert() fails the suite instead.
 */
export function prereqs(opts: { tools?: string[]; server?: boolean }): Prereqs {
  const missing: string[] = [];
  for (const t of opts.tools ?? []) if (!which(t)) missing.push(`tool '${t}' not found`);
  if (opts.server && !existsSync(GLFS_ENTRY)) {
    missing.push(`glfs-target is not built (${GLFS_ENTRY} missing; run npm run build)`);
  }
  const reason = missing.join('; ');
  if (missing.length > 0 && !IS_CI) {
    // Make the skip visible in the test output.
    console.warn(`[e2e] skipping: ${reason}`);
  }
  return {
    skip: missing.length > 0 && !IS_CI,
    reason,
    assert() {
      if (missing.length > 0) throw new Error(`e2e prerequisites missing (CI=${IS_CI}): ${reason}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/** Asks the kernel for a free TCP port on 127.0.0.1 (bind 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** Resolves true once a TCP connection to host:port succeeds. */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((res) => {
    const s = new Socket();
    const done = (ok: boolean) => { s.destroy(); res(ok); };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => done(true));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls until the port accepts TCP connections. Fails early if `exited()` reports that the
 * process went away; `describe()` supplies the server output for the error message.
 */
export async function waitForPort(
  port: number,
  opts: { timeoutMs?: number; exited?: () => string | undefined; describe?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  for (;;) {
    const gone = opts.exited?.();
    if (gone !== undefined) {
      throw new Error(`server exited before listening on ${port} (${gone})\n${opts.describe?.() ?? ''}`);
    }
    if (await canConnect(port)) return;
    if (Date.now() > deadline) {
      throw new Error(`port ${port} not accepting connections after ${opts.timeoutMs ?? 15_000} ms\n${opts.describe?.() ?? ''}`);
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Managed child processes (shared by glfs-target and tgtd)
// ---------------------------------------------------------------------------------------------

const LOG_CAP = 8 * 1024 * 1024;
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

class ManagedProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  private chunks: string[] = [];
  private size = 0;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(private readonly label: string) {}

  start(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
    this.exit = undefined;
    this.append(`\n### [${new Date().toISOString()}] ${this.label}: ${[cmd, ...args].map(shellQuote).join(' ')}\n`);
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    child.stdout!.on('data', (d: Buffer) => this.append(d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => this.append(d.toString('utf8')));
    this.exitPromise = new Promise((res) => {
      child.on('error', (e) => {
        this.append(`\n### spawn error: ${e.message}\n`);
        this.exit ??= { code: null, signal: null };
        live.delete(child);
        res();
      });
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        this.append(`\n### [${new Date().toISOString()}] ${this.label} exited code=${code} signal=${signal}\n`);
        live.delete(child);
        res();
      });
    });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  running(): boolean {
    return this.child !== undefined && this.exit === undefined;
  }

  exitedReason(): string | undefined {
    return this.exit ? `code=${this.exit.code} signal=${this.exit.signal}` : undefined;
  }

  private append(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > LOG_CAP && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }

  logs(): string {
    return this.chunks.join('');
  }

  /** Sends `sig` and waits for exit; escalates to SIGKILL after `graceMs`. Returns true if it had to. */
  async signal(sig: NodeJS.Signals, graceMs = 10_000): Promise<boolean> {
    if (!this.running()) return false;
    this.child!.kill(sig);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exitPromise.then(() => false),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(true), graceMs); }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.child!.kill('SIGKILL');
      await this.exitPromise;
      return true;
    }
    return false;
  }

  waitExit(): Promise<void> {
    return this.exitPromise;
  }
}

// ---------------------------------------------------------------------------------------------
// Target handles
// ---------------------------------------------------------------------------------------------

export interface TargetHandle {
  kind: 'glfs' | 'tgt';
  port: number;
  iqn: string;
  /** '127.0.0.1:PORT' */
  portal: string;
  /** The LUN number of the first data LUN (0 for glfs-target, 1 for tgt). */
  firstLun: number;
  /** 'iscsi://127.0.0.1:PORT/IQN/LUN' (LUN defaults to firstLun). */
  url(lun?: number): string;
  /** Backing file of the i-th configured LUN (0-based index into the configured list). */
  lunPath(i?: number): string;
  /** Captured stdout+stderr of the server process(es) so far. */
  logs(): string;
  /** glfs-target only: the config file the server was started with (rewrite it and send SIGHUP to reload). */
  configPath?: string;
  /** Exit status of the last stopped/killed process. */
  lastExit(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  pid(): number | undefined;
  /** SIGTERM and wait for exit (SIGKILL + error after 10 s), then remove temp files. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal and waits for the process to exit; files are kept (restart() works). */
  kill(sig?: NodeJS.Signals): Promise<void>;
  /** Stops the process if running (SIGTERM) and starts it again with the same config and files. */
  restart(): Promise<void>;
}

export interface GlfsLunOpts {
  size: string;
  path?: string;
  readOnly?: boolean;
}

export interface StartGlfsOpts {
  luns?: GlfsLunOpts[];
  /** Merged over the default "iscsi" section. */
  iscsi?: Record<string, unknown>;
  port?: number;
  iqn?: string;
  /**
   * Portals to listen on (config "portals" entries). Default: ['127.0.0.1:PORT']. The object form
   * carries `advertise` (the address announced in SendTargets, e.g. a VM's guestfwd address) and
   * `tpgt`. The first portal's port is the one waited for and reported as `port`.
   */
  portals?: Array<string | { address: string; advertise?: string; tpgt?: number }>;
  /** The target's ACL (default [{ initiator: '*' }]). */
  acl?: Array<Record<string, unknown>>;
  /** Extra top-level config keys, shallow-merged last (may override anything). */
  extra?: Record<string, unknown>;
  /** Extra environment for the server process. */
  env?: NodeJS.ProcessEnv;
  logLevel?: string;
  /** Milliseconds to wait for the port (default 15 s). */
  startTimeoutMs?: number;
}

export const DEFAULT_ISCSI = {
  headerDigest: ['None', 'CRC32C'],
  dataDigest: ['None', 'CRC32C'],
  immediateData: true,
  initialR2T: false,
  maxRecvDataSegmentLength: 262144,
};

/** Builds the config object startGlfsTarget writes (exported for tests that want to inspect it). */
export function glfsConfig(opts: StartGlfsOpts & { port: number; lunPaths: string[] }): Record<string, unknown> {
  const luns = opts.luns ?? [{ size: '1G' }];
  return {
    portals: opts.portals ?? [`127.0.0.1:${opts.port}`],
    targets: [
      {
        iqn: opts.iqn ?? DEFAULT_IQN,
        luns: luns.map((l, i) => ({ lun: i, path: opts.lunPaths[i], size: l.size, create: l.size !== undefined && !(l.readOnly ?? false), readOnly: l.readOnly ?? false })),
        acl: opts.acl ?? [{ initiator: '*' }],
      },
    ],
    iscsi: { ...DEFAULT_ISCSI, ...(opts.iscsi ?? {}) },
    logLevel: opts.logLevel ?? 'info',
    ...(opts.extra ?? {}),
  };
}

/** utime + stime of process `pid` in microseconds, all its threads (/proc/PID/stat, USER_HZ 100). */
export function processCpuMicros(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * (1e6 / 100);
}

/** Starts `node bin/glfs-target.js serve --config <temp config>` and waits for its port. */
export async function startGlfsTarget(opts: StartGlfsOpts = {}): Promise<TargetHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'glfs-e2e-'));
  const first = opts.portals?.[0];
  const firstPort = first === undefined ? undefined : Number(/:(\d+)$/.exec(typeof first === 'string' ? first : first.address)?.[1]);
  const port = firstPort ?? opts.port ?? (await freePort());
  const luns = opts.luns ?? [{ size: '1G' }];
  const lunPaths = luns.map((l, i) => l.path ?? join(dir, `lun${i}.img`));
  const iqn = opts.iqn ?? DEFAULT_IQN;
  const configPath = join(dir, 'config.json');
  // The control socket stays in the test's directory rather than /run/glfs-target (unless `extra` says otherwise).
  const extra = { controlSocket: join(dir, 'control.sock'), ...opts.extra };
  writeFileSync(configPath, JSON.stringify(glfsConfig({ ...opts, extra, port, lunPaths }), null, 2));
  const proc = new ManagedProcess('glfs-target');
  let cleaned = false;

  const launch = async () => {
    if (!existsSync(GLFS_ENTRY)) throw new Error(`glfs-target is not built: ${GLFS_ENTRY} missing (npm run build)`);
    proc.start(process.execPath, [GLFS_BIN, 'serve', '--config', configPath], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...(opts.env ?? {}) },
    });
    try {
      await waitForPort(port, {
        timeoutMs: opts.startTimeoutMs ?? 15_000,
        exited: () => proc.exitedReason(),
        describe: () => `--- glfs-target output ---\n${proc.logs()}`,
      });
    } catch (e) {
      await proc.signal('SIGKILL', 2000);
      throw e;
    }
  };

  const cleanup = () => {
    if (!cleaned) {
      cleaned = true;
      rmSync(dir, { recursive: true, force: true });
    }
  };

  try {
    await launch();
  } catch (e) {
    cleanup();
    throw e;
  }

  return {
    kind: 'glfs',
    port,
    iqn,
    portal: `127.0.0.1:${port}`,
    firstLun: 0,
    url: (lun = 0) => `iscsi://127.0.0.1:${port}/${iqn}/${lun}`,
    lunPath: (i = 0) => lunPaths[i]!,
    logs: () => proc.logs(),
    configPath,
    lastExit: () => proc.exit,
    pid: () => proc.pid,
    async stop() {
      const forced = await proc.signal('SIGTERM');
      cleanup();
      if (forced) throw new Error(`glfs-target did not exit within 10 s of SIGTERM\n${proc.logs()}`);
    },
    async kill(sig: NodeJS.Signals = 'SIGKILL') {
      await proc.signal(sig);
    },
    async restart() {
      const forced = await proc.signal('SIGTERM');
      if (forced) throw new Error(`glfs-target did not exit within 10 s of SIGTERM\n${proc.logs()}`);
      await launch();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// tgtd (reference target)
// ---------------------------------------------------------------------------------------------

export interface StartTgtOpts {
  backingFile: string;
  /** More backing files, exported as LUN 2, 3, … */
  extraBackingFiles?: string[];
  port: number;
  iqn?: string;
  /** tgtd management channel number (unix socket /var/run/tgtd/socket.N, 0..32767). Default: a free one. */
  controlPort?: number;
  /** Extra `--op update` parameters for the LUN, e.g. { 'readonly': '1' }. */
  lunParams?: Record<string, string>;
  startTimeoutMs?: number;
}

/** tgtd management channels are numbered 0..32767; returns one that no live tgtd answers on. */
export async function freeTgtControlPort(seed: number): Promise<number> {
  const tgtadmBin = which('tgtadm') ?? 'tgtadm';
  for (let i = 0; i < 100; i++) {
    const n = 1000 + ((seed + i) % 31000);
    const r = await run(tgtadmBin, ['-C', String(n), '--lld', 'iscsi', '--op', 'show', '--mode', 'sys'], { timeout: 5000 });
    if (r.code !== 0) return n;
  }
  throw new Error('no free tgtd control port');
}

/**
 * Starts `tgtd -f` on 127.0.0.1:PORT with a private control port, creates target tid 1 with the
 * backing file as LUN 1 (tgt's LUN 0 is its controller) and binds it to all initiators.
 */
export async function startTgt(opts: StartTgtOpts): Promise<TargetHandle> {
  const iqn = opts.iqn ?? TGT_DEFAULT_IQN;
  const tgtd = which('tgtd') ?? 'tgtd';
  const tgtadmBin = which('tgtadm') ?? 'tgtadm';
  const ctl = String(opts.controlPort ?? (await freeTgtControlPort(opts.port)));
  const proc = new ManagedProcess('tgtd');

  const tgtadm = (...args: string[]) => runOk(tgtadmBin, ['-C', ctl, '--lld', 'iscsi', ...args], { timeout: 15_000 });

  const launch = async () => {
    if (await canConnect(opts.port)) throw new Error(`port ${opts.port} is already in use`);
    proc.start(tgtd, ['-f', '-C', ctl, '--iscsi', `portal=127.0.0.1:${opts.port}`]);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
    // Wait for the management socket.
    for (;;) {
      const gone = proc.exitedReason();
      if (gone) throw new Error(`tgtd exited during startup (${gone})\n${proc.logs()}`);
      const r = await run(tgtadmBin, ['-C', ctl, '--lld', 'iscsi', '--op', 'show', '--mode', 'sys'], { timeout: 5000 });
      if (r.code === 0) break;
      if (Date.now() > deadline) {
        await proc.signal('SIGKILL', 2000);
        throw new Error(`tgtd management channel ${ctl} not ready\n${describeRun(r)}\n${proc.logs()}`);
      }
      await sleep(100);
    }
    try {
      await tgtadm('--op', 'new', '--mode', 'target', '--tid', '1', '-T', iqn);
      const files = [opts.backingFile, ...(opts.extraBackingFiles ?? [])];
      for (let i = 0; i < files.length; i++) {
        await tgtadm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', String(i + 1), '-b', files[i]!);
      }
      if (opts.lunParams && Object.keys(opts.lunParams).length > 0) {
        const params = Object.entries(opts.lunParams).map(([k, v]) => `${k}=${v}`).join(',');
        await tgtadm('--op', 'update', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '--params', params);
      }
      await tgtadm('--op', 'bind', '--mode', 'target', '--tid', '1', '-I', 'ALL');
      await waitForPort(opts.port, {
        timeoutMs: Math.max(1000, deadline - Date.now()),
        exited: () => proc.exitedReason(),
        describe: () => proc.logs(),
      });
    } catch (e) {
      await proc.signal('SIGKILL', 2000);
      throw e;
    }
  };

  await launch();
  // tgtd ignores SIGTERM, and `tgtadm --op delete --mode system` does not stop it while targets
  // exist. Its rdwr backing store writes with pwrite(), so SIGKILL loses nothing once clients are done.
  const halt = async () => {
    if (proc.running()) await proc.signal('SIGKILL', 5000);
    for (const f of [`socket.${ctl}`, `socket.${ctl}.lock`]) rmSync(join('/var/run/tgtd', f), { force: true });
  };

  return {
    kind: 'tgt',
    port: opts.port,
    iqn,
    portal: `127.0.0.1:${opts.port}`,
    firstLun: 1,
    url: (lun = 1) => `iscsi://127.0.0.1:${opts.port}/${iqn}/${lun}`,
    lunPath: (i = 0) => [opts.backingFile, ...(opts.extraBackingFiles ?? [])][i]!,
    logs: () => proc.logs(),
    lastExit: () => proc.exit,
    pid: () => proc.pid,
    stop: halt,
    async kill(sig: NodeJS.Signals = 'SIGKILL') {
      await proc.signal(sig);
    },
    async restart() {
      await halt();
      await launch();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Misc helpers for tests
// ---------------------------------------------------------------------------------------------

/** Parses sizes like "1G", "64M", "512k", "4096" (binary multiples) into bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+)\s*([kKmMgGtT]?)(i?[bB])?$/.exec(s.trim());
  if (!m) throw new Error(`bad size: ${s}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * mult;
}

/** qemu `--image-opts` string for the first `size` bytes of an iSCSI LUN (raw driver window). */
export function qemuIscsiImageOpts(t: Pick<TargetHandle, 'portal' | 'iqn' | 'firstLun'>, opts: { lun?: number; size?: number; offset?: number } = {}): string {
  const parts = ['driver=raw'];
  if (opts.offset !== undefined) parts.push(`offset=${opts.offset}`);
  if (opts.size !== undefined) parts.push(`size=${opts.size}`);
  parts.push('file.driver=iscsi', 'file.transport=tcp', `file.portal=${t.portal}`, `file.target=${t.iqn}`,
    `file.lun=${opts.lun ?? t.firstLun}`, `file.initiator-name=${INITIATOR}`);
  return parts.join(',');
}

/** qemu `--image-opts` string for a local raw file. */
export function qemuFileImageOpts(path: string): string {
  return `driver=raw,file.driver=file,file.filename=${path.replace(/,/g, ',,')}`;
}

/** Makes a temp directory that the caller removes with the returned function. */
export function tempDir(prefix = 'glfs-e2e-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------------------------
// Interactive qemu-io: one long-lived iSCSI session driven command by command
// ---------------------------------------------------------------------------------------------

const PROMPT = 'qemu-io> ';

/**
 * Keeps one `qemu-io` process (hence one iSCSI session) open and runs commands in it, so a test
 * can interleave I/O from this session with I/O from other sessions.
 */
export class QemuIoSession {
  private child: ChildProcess;
  private out = '';
  private consumed = 0;
  private exited = false;
  private stderrText = '';

  private constructor(args: string[]) {
    this.child = spawn(which('qemu-io') ?? 'qemu-io', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.child);
    this.child.stdout!.on('data', (d: Buffer) => { this.out += d.toString('latin1'); });
    this.child.stderr!.on('data', (d: Buffer) => { this.stderrText += d.toString('utf8'); });
    this.child.stdin!.on('error', () => undefined);
    this.child.on('exit', () => { this.exited = true; live.delete(this.child); });
  }

  /** Opens `target` (a URL, or an --image-opts string when imageOpts is set); `readOnly` for a write-protected LUN. */
  static async open(target: string, opts: { imageOpts?: boolean; cache?: string; timeoutMs?: number; readOnly?: boolean } = {}): Promise<QemuIoSession> {
    const args = [...(opts.readOnly ? ['-r'] : []), ...(opts.imageOpts ? ['--image-opts'] : ['-f', 'raw']), '-t', opts.cache ?? 'none', target];
    const s = new QemuIoSession(args);
    await s.untilPrompt(opts.timeoutMs ?? 15_000);
    return s;
  }

  private async untilPrompt(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.out.indexOf(PROMPT, this.consumed);
      if (i >= 0) {
        const text = this.out.slice(this.consumed, i);
        this.consumed = i + PROMPT.length;
        return text;
      }
      if (this.exited) throw new Error(`qemu-io exited\nstdout: ${this.out}\nstderr: ${this.stderrText}`);
      if (Date.now() > deadline) throw new Error(`qemu-io: no prompt within ${timeoutMs} ms\nstdout: ${this.out}\nstderr: ${this.stderrText}`);
      await sleep(20);
    }
  }

  /** Runs one qemu-io command and returns its output (stdout up to the next prompt). */
  async cmd(line: string, timeoutMs = 30_000): Promise<string> {
    this.child.stdin!.write(`${line}\n`);
    const text = await this.untilPrompt(timeoutMs);
    return text + (this.stderrText ? `\n[stderr] ${this.stderrText}` : '');
  }

  async close(): Promise<void> {
    if (this.exited) return;
    this.child.stdin!.end('quit\n');
    const deadline = Date.now() + 10_000;
    while (!this.exited && Date.now() < deadline) await sleep(20);
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** Checks a qemu-io read/write transcript: the full length was transferred and nothing mismatched. */
export function qemuIoOk(out: string, op: 'read' | 'wrote', len: number, offset: number): boolean {
  return out.includes(`${op} ${len}/${len} bytes at offset ${offset}`) && !/Pattern verification failed|error|failed/i.test(out);
}
