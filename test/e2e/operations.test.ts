/**
 * Operating a running server as an admin does: `glfs-target status` (text and --json) over the
 * control socket while real initiators (QEMU's iSCSI driver with and without CHAP, libiscsi's
 * iscsi-inq, the in-repo TestInitiator) are logged in; the socket refused to a non-root user;
 * Prometheus /metrics parsed after known traffic; /healthz and /readyz, also when a LUN's
 * volume goes away; readable logs on a terminal.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheusTextFormat, { type MetricFamily, type Sample } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ServerStatus, SessionStatus } from '../../src/ops/server-status.js';
import { TestInitiator } from '../support/test-initiator.js';
import {
  GLFS_BIN, INITIATOR, QemuIoSession, describeRun, freePort, prereqs, qemuIoOk, qemuIscsiImageOpts, run, sleep, startGlfsTarget, tempDir,
  type RunResult, type TargetHandle,
} from './harness.js';

const pre = prereqs({ tools: ['qemu-io', 'iscsi-inq', 'setpriv', 'script'], server: true });
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const CHAP_USER = 'ops';
const CHAP_SECRET = 'ops-secret-0123';
const STALLED = 'iqn.2007-10.com.example:stalled';
const INTRUDER = 'iqn.2007-10.com.example:intruder';
const KiB = 1024;

const glfs = (args: string[], timeout = 20_000): Promise<RunResult> => run(process.execPath, [GLFS_BIN, ...args], { timeout });

async function httpGet(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Every sample of a parsed family whose labels include `labels`. */
function samples(families: MetricFamily[], name: string, labels: Record<string, string>): Sample[] {
  // A family may come in several runs (the histogram's lines, parsed as untyped families).
  return (families.filter((f) => f.name === name).flatMap((f) => f.metrics) as Sample[]).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}
/** The value of the one sample of `name` with `labels`. */
function value(families: MetricFamily[], name: string, labels: Record<string, string> = {}): number {
  const found = samples(families, name, labels);
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
  return Number(found[0]!.value);
}

/**
 * The exposition parsed by parse-prometheus-text-format. That library folds a histogram's series
 * into one and drops their labels (its issue #13), so the histogram's _bucket, _sum and _count
 * lines are also parsed as untyped families of their own.
 */
function parseMetrics(text: string): MetricFamily[] {
  const histograms = [...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]!);
  const untyped = histograms.reduce((t, name) => t.replace(`# TYPE ${name} histogram`, `# TYPE ${name} untyped`), text);
  return [...parsePrometheusTextFormat(text), ...parsePrometheusTextFormat(untyped).filter((f) => histograms.some((h) => f.name.startsWith(`${h}_`)))];
}

describe.skipIf(pre.skip)('operating a running server: status, metrics, health', () => {
  let t: TargetHandle;
  let tmp: ReturnType<typeof tempDir>;
  let socket: string;
  let metricsPort: number;
  let chapSession: QemuIoSession | undefined;
  let plainSession: QemuIoSession | undefined;
  let stalled: TestInitiator | undefined;
  let stalledItt = 0;

  beforeAll(async () => {
    pre.assert();
    tmp = tempDir('glfs-ops-');
    // World-searchable directories, so that only the socket's own mode keeps other users out.
    chmodSync(tmp.dir, 0o755);
    mkdirSync(join(tmp.dir, 'run'), { mode: 0o755 });
    socket = join(tmp.dir, 'run', 'control.sock');
    metricsPort = await freePort();
    t = await startGlfsTarget({
      luns: [{ size: '64M' }, { size: '16M' }],
      acl: [{ initiator: INITIATOR, readOnly: true }, { initiator: STALLED }, { initiator: '*', chap: { username: CHAP_USER, secret: CHAP_SECRET } }],
      // A command whose data does not come ends after nopInTimeout.
      iscsi: { nopInTimeout: 3 },
      extra: { controlSocket: socket, metrics: { address: `127.0.0.1:${metricsPort}` } },
    });
  });

  afterAll(async () => {
    await chapSession?.close();
    await plainSession?.close();
    stalled?.close();
    await t?.stop();
    tmp?.cleanup();
  });

  test('initiators log in and do known I/O; one without CHAP is refused', async () => {
    // QEMU with CHAP in the URL (its own initiator name), through the "*" entry that asks for CHAP.
    chapSession = await QemuIoSession.open(`iscsi://${CHAP_USER}%${CHAP_SECRET}@${t.portal}/${t.iqn}/0`);
    for (const offset of [0, 64 * KiB, 128 * KiB]) expect(qemuIoOk(await chapSession.cmd(`write -P 0xa5 ${offset} 64k`), 'wrote', 64 * KiB, offset)).toBe(true);
    for (const offset of [0, 64 * KiB]) expect(qemuIoOk(await chapSession.cmd(`read -P 0xa5 ${offset} 64k`), 'read', 64 * KiB, offset)).toBe(true);
    // QEMU as INITIATOR (read-only ACL entry, no CHAP), on LUN 1.
    plainSession = await QemuIoSession.open(qemuIscsiImageOpts(t, { lun: 1 }), { imageOpts: true, readOnly: true });
    expect(qemuIoOk(await plainSession.cmd('read 0 4k'), 'read', 4 * KiB, 0)).toBe(true);
    // A WRITE whose data never comes: in flight until the Data-Out timeout (digests on, LUN 1).
    stalled = await TestInitiator.connect(t.port);
    const login = await stalled.login({ initiatorName: STALLED, targetName: t.iqn, keys: { HeaderDigest: 'CRC32C', DataDigest: 'CRC32C' } });
    expect(login.status).toBe(0);
    await stalled.clearUnitAttentions();
    const cdb = Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0]); // WRITE(10) LBA 0, 8 blocks
    stalledItt = stalled.itt;
    await stalled.sendPdu(stalled.commandHeader(cdb, { write: true, edtl: 4096, final: false, lun: 1 }));
    // Anyone else must bring CHAP.
    const refused = await run('iscsi-inq', ['-i', INTRUDER, t.url(0)], { timeout: 20_000 });
    expect(refused.code, describeRun(refused)).not.toBe(0);
  });

  test('status --json shows every target, LUN, session and counter', async () => {
    const r = await glfs(['status', '--socket', socket, '--json']);
    expect(r.code, describeRun(r)).toBe(0);
    const s = JSON.parse(r.stdout) as ServerStatus;
    expect(s.format).toBe(1);
    expect(s.server).toMatchObject({ version: VERSION, pid: t.pid(), group: 1, configFile: t.configPath, portals: [{ address: t.portal, tpgt: 1 }] });
    expect(s.server.node.length).toBeGreaterThan(0);
    expect(s.server.uptimeSeconds).toBeGreaterThanOrEqual(0);

    expect(s.targets).toHaveLength(1);
    const target = s.targets[0]!;
    expect(target).toMatchObject({ iqn: t.iqn, alias: null });
    expect(target.acl).toEqual([
      { initiator: INITIATOR, readOnly: true, chap: false },
      { initiator: STALLED, readOnly: false, chap: false },
      { initiator: '*', readOnly: false, chap: true },
    ]);
    const [lun0, lun1] = target.luns;
    expect(lun0).toMatchObject({
      lun: 0, path: t.lunPath(0), sizeBytes: 64 * 1024 * KiB, blockSize: 512, readOnly: false, writeCache: true, online: true,
      owner: s.server.node, alua: { state: 'active/optimized', group: 1, groups: [{ id: 1, state: 'active/optimized' }] },
    });
    expect(lun1).toMatchObject({ lun: 1, path: t.lunPath(1), sizeBytes: 16 * 1024 * KiB, online: true });
    // The I/O the CHAP session did, exactly.
    expect(lun0!.io.write).toMatchObject({ commands: 3, bytes: 3 * 64 * KiB, failed: 0 });
    expect(lun0!.io.read).toMatchObject({ commands: 2, bytes: 2 * 64 * KiB, failed: 0 });
    expect(lun0!.io.read.meanLatencySeconds).toBeGreaterThan(0);
    expect(lun1!.io.read).toMatchObject({ commands: 1, bytes: 4 * KiB });

    // Sessions, checked against what the server logged at each login (the remote address included).
    const logins = t.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'login');
    const byInitiator = (name: string | RegExp): SessionStatus => {
      const found = s.sessions.filter((x) => (typeof name === 'string' ? x.initiator === name : name.test(x.initiator)));
      expect(found, JSON.stringify(s.sessions)).toHaveLength(1);
      const x = found[0]!;
      const logged = logins.find((l) => l.tsih === x.tsih)!;
      expect(logged).toMatchObject({ initiator: x.initiator, isid: x.isid, remote: x.remote, target: t.iqn });
      expect(x).toMatchObject({ type: 'Normal', target: t.iqn, portal: t.portal, tpgt: 1, initiatorAlias: null });
      expect(x.isid).toMatch(/^[0-9a-f]{12}$/);
      expect(x.remote).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(x.ageSeconds).toBeGreaterThanOrEqual(0);
      return x;
    };
    expect(s.sessions).toHaveLength(3);
    expect(byInitiator(/^iqn\.2008-11\.org\.linux-kvm/)).toMatchObject({
      authentication: 'chap', readOnly: false, headerDigest: 'None', dataDigest: 'None', commandsInFlight: 0,
      maxBurstLength: 262144, firstBurstLength: 262144, initiatorMaxRecvDataSegmentLength: 262144, targetMaxRecvDataSegmentLength: 262144,
      immediateData: true, initialR2T: false,
    });
    expect(byInitiator(INITIATOR)).toMatchObject({ authentication: 'none', readOnly: true, commandsInFlight: 0 });
    expect(byInitiator(STALLED)).toMatchObject({
      authentication: 'none', readOnly: false, headerDigest: 'CRC32C', dataDigest: 'CRC32C', commandsInFlight: 1,
      maxBurstLength: 262144, firstBurstLength: 65536, immediateData: true, initialR2T: false,
    });

    expect(s.counters.logins).toEqual({ normal: 3, discovery: 0 });
    expect(s.counters.loginRefusals).toEqual({ 'authentication-failure': 1 });
    expect(s.counters.dataInFlight.limitBytes).toBe(64 * 1024 * KiB);
  });

  test('status for a person: targets, LUNs, ACL and sessions as a tree', async () => {
    const r = await glfs(['status', '--config', t.configPath!]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toContain(`Target: ${t.iqn}`);
    expect(r.stdout).toContain(`Backing file: ${t.lunPath(0)}`);
    expect(r.stdout).toContain('Size: 64.0 MiB (67108864 bytes), block size 512');
    expect(r.stdout).toMatch(/Writes: 3 \(192\.0 KiB\), mean [\d.]+ ms, failed 0/);
    expect(r.stdout).toContain(`Initiator: ${STALLED}`);
    expect(r.stdout).toMatch(/Digests: header CRC32C, data CRC32C\n.*\n.*\n\s+Age: \d+s, commands in flight: 1/);
    expect(r.stdout).toContain('Authentication: CHAP');
    expect(r.stdout).toContain('Login refusals: authentication-failure 1');
  });

  test('the control socket is root-only: another user is refused', async () => {
    const st = statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(0);
    const r = await run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, GLFS_BIN, 'status', '--socket', socket], { timeout: 20_000 });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/permission denied on .*control\.sock: the control socket is for root only/);
  });

  test('/metrics, parsed as Prometheus text, counts the traffic', async () => {
    const res = await httpGet(metricsPort, '/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(res.body);
    expect(m.find((f) => f.name === 'glfs_target_lun_command_duration_seconds')?.type).toBe('HISTOGRAM');
    const lun0 = { target: t.iqn, lun: '0' };
    expect(value(m, 'glfs_target_lun_commands_total', { ...lun0, op: 'write' })).toBe(3);
    expect(value(m, 'glfs_target_lun_bytes_total', { ...lun0, op: 'write' })).toBe(3 * 64 * KiB);
    expect(value(m, 'glfs_target_lun_commands_total', { ...lun0, op: 'read' })).toBe(2);
    expect(value(m, 'glfs_target_lun_bytes_total', { ...lun0, op: 'read' })).toBe(2 * 64 * KiB);
    expect(value(m, 'glfs_target_lun_commands_total', { target: t.iqn, lun: '1', op: 'read' })).toBe(1);
    // Every command is in the latency histogram once.
    for (const op of ['read', 'write', 'other']) {
      const series = { ...lun0, op };
      const commands = value(m, 'glfs_target_lun_commands_total', series);
      expect(value(m, 'glfs_target_lun_command_duration_seconds_count', series)).toBe(commands);
      const buckets = samples(m, 'glfs_target_lun_command_duration_seconds_bucket', series);
      expect(buckets.map((b) => b.labels!.le)).toEqual(['0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
      const cumulative = buckets.map((b) => Number(b.value));
      expect(cumulative).toEqual([...cumulative].sort((a, b) => a - b));
      expect(cumulative.at(-1)).toBe(commands);
      expect(value(m, 'glfs_target_lun_command_duration_seconds_sum', series)).toBeGreaterThan(0);
    }
    // Each session's first command met its power-on unit attention: a failure, by reason.
    expect(samples(m, 'glfs_target_lun_command_failures_total', { ...lun0, reason: 'unit-attention' }).length).toBeGreaterThanOrEqual(1);
    expect(value(m, 'glfs_target_sessions', { target: t.iqn, type: 'Normal' })).toBe(3);
    expect(value(m, 'glfs_target_logins_total', { type: 'Normal' })).toBe(3);
    expect(value(m, 'glfs_target_login_refusals_total', { reason: 'authentication-failure' })).toBe(1);
    expect(value(m, 'glfs_target_lun_online', lun0)).toBe(1);
    expect(value(m, 'glfs_target_lun_owned', lun0)).toBe(1);
    expect(value(m, 'glfs_target_data_in_flight_limit_bytes')).toBe(64 * 1024 * KiB);
    expect(value(m, 'glfs_target_data_in_flight_bytes')).toBeGreaterThanOrEqual(0);
    expect(m.some((f) => f.name === 'process_resident_memory_bytes')).toBe(true);
  });

  test('the stalled command ends, and leaves the count of commands in flight', async () => {
    // Its data never came: after nopInTimeout it ends with CHECK CONDITION (4Bh/06h).
    const done = await stalled!.collect(stalledItt, 20_000);
    expect(done.status).toBe(0x02);
    const s = JSON.parse((await glfs(['status', '--socket', socket, '--json'])).stdout) as ServerStatus;
    expect(s.sessions.find((x) => x.initiator === STALLED)!.commandsInFlight).toBe(0);
    expect(s.targets[0]!.luns[1]!.io.write).toMatchObject({ commands: 1, failed: 1, failures: { 'aborted-command': 1 } });
  });

  test('/healthz and /readyz: ready while every LUN is online, not when a LUN\'s volume is gone', async () => {
    expect(await httpGet(metricsPort, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await httpGet(metricsPort, '/readyz')).toMatchObject({ status: 200, body: 'ready\n' });
    expect((await httpGet(metricsPort, '/nothing')).status).toBe(404);
    // LUN 1's state directory disappears, as when the volume under it is lost: the owner can no
    // longer show that it owns the LUN and stops serving it (ALUA transitioning).
    rmSync(`${t.lunPath(1)}.glfs-target`, { recursive: true, force: true });
    let ready = await httpGet(metricsPort, '/readyz');
    for (let i = 0; i < 40 && ready.status === 200; i++) {
      await sleep(250);
      ready = await httpGet(metricsPort, '/readyz');
    }
    expect(ready.status).toBe(503);
    expect(ready.body).toBe(`not ready:\n  ${t.iqn} LUN 1: ALUA transitioning\n`);
    expect(await httpGet(metricsPort, '/healthz')).toMatchObject({ status: 200 });
    const m = parseMetrics((await httpGet(metricsPort, '/metrics')).body);
    expect(value(m, 'glfs_target_lun_online', { target: t.iqn, lun: '1' })).toBe(0);
    expect(value(m, 'glfs_target_lun_online', { target: t.iqn, lun: '0' })).toBe(1);
  });
});

describe.skipIf(pre.skip)('logs a person can read', () => {
  /** Run `serve` with the built-in configuration under a pseudo-terminal (script) until it is ready, then stop it. */
  async function serveOnTerminal(extra: string[]): Promise<{ output: string; status: RunResult }> {
    const tmp = tempDir('glfs-tty-');
    try {
      const port = await freePort();
      const command = [process.execPath, GLFS_BIN, 'serve', '--data-dir', tmp.dir, '--port', String(port), ...extra].join(' ');
      const child = spawn('script', ['-qec', command, '/dev/null'], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      const plain = () => output.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');
      child.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      for (let i = 0; i < 150 && !/INFO: ready$|"msg":"ready"/m.test(plain()); i++) await sleep(100);
      // The built-in configuration keeps its control socket in the data directory.
      const status = await glfs(['status', '--data-dir', tmp.dir]);
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
      return { output: plain(), status };
    } finally {
      tmp.cleanup();
    }
  }

  test('on a terminal: one readable line per entry', async () => {
    const { output, status } = await serveOnTerminal([]);
    const lines = output.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.some((l) => l.startsWith('{'))).toBe(false);
    expect(output).toMatch(new RegExp(`^\\[\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\] INFO: glfs-target ${VERSION.replace(/\./g, '\\.')} starting \\{"version":`, 'm'));
    expect(output).toMatch(/^\[[^\]]+\] INFO: ready$/m);
    expect(status.code, describeRun(status)).toBe(0);
    expect(status.stdout).toContain('Target: iqn.2016-06.org.gluster:glfs-target');
  });

  test('--log-format json on a terminal: JSON lines', async () => {
    const { output } = await serveOnTerminal(['--log-format', 'json']);
    const lines = output.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
    expect(lines.some((l) => (JSON.parse(l) as { msg?: string }).msg === 'ready')).toBe(true);
  });
});
