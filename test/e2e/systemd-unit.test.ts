/**
 * deploy/systemd/glfs-target.service against what it runs:
 *  - its paths are the package's: ExecStart is the `bin` that `npm install -g --prefix /usr/local`
 *    of `npm pack`'s tarball installs, the config path is the one the image and the DaemonSet use,
 *    RuntimeDirectory holds the default control socket, the gluster mount is both required and
 *    writable;
 *  - `systemd-analyze verify` accepts it, with the packaged layout in a scratch root;
 *  - `systemd-analyze security --offline` rates it OK;
 *  - its sandbox lets the server do what it does: every system call and address family that
 *    `serve` uses (under strace) through login, writes, status, SIGHUP and SIGTERM is allowed by
 *    SystemCallFilter and RestrictAddressFamilies.
 * systemd is not PID 1 here, so the unit itself is not started.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { DEFAULT_CONTROL_SOCKET } from '../../src/config/schema.js';
import { GLFS_BIN, REPO_ROOT, describeRun, freePort, prereqs, run, runOk, sleep, tempDir, waitForPort, which } from './harness.js';

const UNIT_PATH = join(REPO_ROOT, 'deploy', 'systemd', 'glfs-target.service');
const CONFIG_PATH = '/etc/glfs-target/target.json';
const PREFIX = '/usr/local';

/** The unit's [Section] → key → values (a key given twice keeps both, as systemd's list settings do). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let cur: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      cur = new Map();
      sections.set(sec[1]!, cur);
      continue;
    }
    const eq = line.indexOf('=');
    if (!cur || eq < 0) throw new Error(`unparsed unit line: ${raw}`);
    const key = line.slice(0, eq).trim();
    cur.set(key, [...(cur.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

const unit = parseUnit(readFileSync(UNIT_PATH, 'utf8'));
const get = (section: string, key: string): string[] => unit.get(section)?.get(key) ?? [];
const words = (section: string, key: string) => get(section, key).flatMap((v) => v.split(/\s+/)).filter(Boolean);
const one = (section: string, key: string): string => {
  const v = get(section, key);
  expect(v, `${section}.${key}`).toHaveLength(1);
  return v[0]!;
};

/** The scratch root: the unit, systemd's own units, /bin/kill, and the package as npm installs it. */
async function packagedRoot(root: string): Promise<void> {
  const pack = await runOk('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', root], { cwd: REPO_ROOT, timeout: 60_000 });
  const tgz = join(root, pack.stdout.trim().split('\n').pop()!);
  const pkgDir = join(root, PREFIX.slice(1), 'lib', 'node_modules', 'glfs-target');
  mkdirSync(pkgDir, { recursive: true });
  await runOk('tar', ['-xzf', tgz, '-C', pkgDir, '--strip-components=1']);
  const bins = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;
  mkdirSync(join(root, PREFIX.slice(1), 'bin'), { recursive: true });
  for (const [name, file] of Object.entries(bins)) {
    const link = join(root, PREFIX.slice(1), 'bin', name);
    symlinkSync(relative(dirname(link), join(pkgDir, file)), link); // what npm install -g makes
  }
  mkdirSync(join(root, 'usr', 'lib', 'systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr', 'lib', 'systemd', 'system'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/kill', join(root, 'bin', 'kill'));
  mkdirSync(join(root, 'etc', 'systemd', 'system'), { recursive: true });
  copyFileSync(UNIT_PATH, join(root, 'etc', 'systemd', 'system', 'glfs-target.service'));
}

describe('systemd unit: paths', () => {
  test('ExecStart is the package\'s bin under /usr/local with the config the image and the DaemonSet use', async () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const [binName, binFile] = Object.entries(pkg.bin)[0]!;
    expect(one('Service', 'ExecStart')).toBe(`${PREFIX}/bin/${binName} serve --config ${CONFIG_PATH}`);
    // The bin and what it loads are in the package.
    const dry = await runOk('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT, timeout: 60_000 });
    const files = (JSON.parse(dry.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    expect(files).toContain(binFile.replace(/^\.\//, ''));
    expect(readFileSync(join(REPO_ROOT, binFile), 'utf8')).toContain("import('../dist/cli.js')");
    expect(files).toContain('dist/cli.js');
    const dockerfile = readFileSync(join(REPO_ROOT, 'docker', 'target.Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`CMD ["serve", "--config", "${CONFIG_PATH}"]`);
  });

  test('RuntimeDirectory holds the default control socket, root only', () => {
    expect(dirname(DEFAULT_CONTROL_SOCKET)).toBe(`/run/${one('Service', 'RuntimeDirectory')}`);
    expect(one('Service', 'RuntimeDirectoryMode')).toBe('0700');
  });

  test('the gluster mount is required and writable; everything else is read-only', () => {
    const mount = one('Unit', 'RequiresMountsFor');
    expect(mount).toMatch(/^\/\S+$/);
    expect(words('Service', 'ReadWritePaths')).toContain(mount);
    expect(one('Service', 'ProtectSystem')).toBe('strict');
  });

  test('reload is SIGHUP, restart on failure, and the sandbox keeps port 3260, sockets and the control socket', () => {
    expect(one('Service', 'ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('Service', 'Restart')).toBe('on-failure');
    expect(words('Service', 'CapabilityBoundingSet')).toContain('CAP_NET_BIND_SERVICE');
    expect(words('Service', 'RestrictAddressFamilies')).toEqual(expect.arrayContaining(['AF_UNIX', 'AF_INET', 'AF_INET6']));
    for (const key of ['ProtectHome', 'PrivateTmp', 'NoNewPrivileges']) expect(one('Service', key), key).toBe('yes');
  });
});

const analyze = prereqs({ tools: ['systemd-analyze'], server: true });
describe.skipIf(analyze.skip)('systemd unit: systemd-analyze', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    analyze.assert();
    tmp = tempDir('systemd-unit-');
    await packagedRoot(tmp.dir);
  });
  afterAll(() => tmp?.cleanup());

  test('verify: no error and no warning, ExecStart executable in the packaged layout', async () => {
    const r = await run(which('systemd-analyze')!, ['verify', `--root=${tmp.dir}`, 'glfs-target.service']);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr.trim(), describeRun(r)).toBe('');
    expect(existsSync(join(tmp.dir, 'usr/local/bin/glfs-target'))).toBe(true);
  });

  test('verify fails where the package is not installed (the check is real)', async () => {
    const bare = tempDir('systemd-unit-bare-');
    try {
      mkdirSync(join(bare.dir, 'usr', 'lib', 'systemd'), { recursive: true });
      cpSync(join(tmp.dir, 'usr/lib/systemd/system'), join(bare.dir, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
      cpSync(join(tmp.dir, 'bin'), join(bare.dir, 'bin'), { recursive: true });
      cpSync(join(tmp.dir, 'etc'), join(bare.dir, 'etc'), { recursive: true });
      const r = await run(which('systemd-analyze')!, ['verify', `--root=${bare.dir}`, 'glfs-target.service']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('/usr/local/bin/glfs-target is not executable');
    } finally {
      bare.cleanup();
    }
  });

  test('security --offline: overall exposure OK or better', async () => {
    const r = await run(which('systemd-analyze')!, ['security', '--offline=true', '--no-pager', UNIT_PATH]);
    const m = /Overall exposure level for glfs-target\.service: ([\d.]+) (\S+)/.exec(r.stdout + r.stderr);
    expect(m, describeRun(r)).not.toBeNull();
    expect(Number(m![1]), describeRun(r)).toBeLessThanOrEqual(3.0);
    expect(['OK', 'SAFE', 'PERFECT']).toContain(m![2]);
  });
});

/** systemd's system-call groups, expanded: `systemd-analyze syscall-filter` lists each group's members. */
async function allowedSyscalls(filter: string[]): Promise<Set<string>> {
  const out = (await runOk(which('systemd-analyze')!, ['syscall-filter', '--no-pager'])).stdout;
  const groups = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('@')) groups.set(line.trim(), (cur = []));
    else if (cur && line.trim() && !line.trim().startsWith('#')) cur.push(line.trim());
  }
  const expand = (name: string): string[] => (name.startsWith('@') ? (groups.get(name) ?? []).flatMap(expand) : [name]);
  return new Set(filter.flatMap(expand));
}

const sandbox = prereqs({ tools: ['strace', 'systemd-analyze', 'iscsi-ls', 'qemu-img', 'qemu-io'], server: true });
describe.skipIf(sandbox.skip)('systemd unit: the sandbox allows what serve does (strace)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let trace = '';
  let logs = '';

  beforeAll(async () => {
    sandbox.assert();
    tmp = tempDir('systemd-strace-');
    const port = await freePort();
    const iqn = 'iqn.2016-06.org.gluster:systemd-sandbox';
    const config = join(tmp.dir, 'target.json');
    const socket = join(tmp.dir, 'run', 'control.sock');
    writeFileSync(config, JSON.stringify({
      portals: [`127.0.0.1:${port}`],
      controlSocket: socket,
      targets: [{ iqn, luns: [{ lun: 0, path: join(tmp.dir, 'lun0.img'), create: true, size: '16M' }], acl: [{ initiator: '*' }] }],
    }));
    const served = run(which('strace')!, ['-f', '-qq', '-o', join(tmp.dir, 'trace'), process.execPath, GLFS_BIN, 'serve', '--config', config, '--log-format', 'json'], { timeout: 120_000 });
    await waitForPort(port, { timeoutMs: 30_000 });
    const url = `iscsi://127.0.0.1:${port}/${iqn}/0`;
    await runOk(which('iscsi-ls')!, ['-s', `iscsi://127.0.0.1:${port}`]);
    const data = join(tmp.dir, 'data.img');
    writeFileSync(data, Buffer.alloc(4 * 1024 * 1024, 0x5a));
    await runOk(which('qemu-img')!, ['convert', '-n', '-f', 'raw', '-O', 'raw', data, url], { timeout: 60_000 });
    const read = await runOk(which('qemu-io')!, ['-f', 'raw', '-c', `read -P 0x5a 0 ${4 * 1024 * 1024}`, url], { timeout: 60_000 });
    expect(read.stdout).toMatch(/read 4194304\/4194304 bytes/);
    const status = await runOk(process.execPath, [GLFS_BIN, 'status', '--json', '--socket', socket]);
    const pid = (JSON.parse(status.stdout) as { server: { pid: number } }).server.pid;
    process.kill(pid, 'SIGHUP');
    await sleep(1000);
    process.kill(pid, 'SIGTERM');
    const r = await served;
    logs = r.stdout;
    expect(r.code, describeRun(r)).toBe(0);
    trace = readFileSync(join(tmp.dir, 'trace'), 'utf8');
  }, 180_000);
  afterAll(() => tmp?.cleanup());

  test('the run did what a service does', () => {
    for (const msg of ['ready', 'login', 'configuration reloaded', 'stopped']) expect(logs).toContain(`"msg":"${msg}"`);
  });

  test('every system call is in SystemCallFilter', async () => {
    const used = new Set([...trace.matchAll(/^\d+ +(?:<\.\.\. )?([a-z_0-9]+)[( ]/gm)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(30);
    expect(used).toContain('flock');
    const allowed = await allowedSyscalls(words('Service', 'SystemCallFilter'));
    expect([...used].filter((s) => !allowed.has(s))).toEqual([]);
  });

  test('every socket address family is in RestrictAddressFamilies', () => {
    const families = new Set([...trace.matchAll(/\bsocket\((AF_[A-Z0-9]+)/g)].map((m) => m[1]!));
    expect(families).toContain('AF_INET');
    expect(families).toContain('AF_UNIX');
    const allowed = words('Service', 'RestrictAddressFamilies');
    expect([...families].filter((f) => !allowed.includes(f))).toEqual([]);
  });
});
