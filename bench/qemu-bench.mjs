#!/usr/bin/env node
// glfs-target vs tgt throughput with `qemu-img bench` (QEMU's iSCSI driver = libiscsi).
//
//   npm run bench                         # 5 rounds, both targets (builds dist/ first if missing)
//   node bench/qemu-bench.mjs --rounds 3 --only tgt
//   node bench/qemu-bench.mjs --quick     # 1 round, small counts (smoke test)
//
// Options: --rounds N (5) | --quick | --only glfs|tgt | --build (run `npm run build` first) |
//          --scale F (multiply request counts) | --json FILE (raw results) | --dir DIR (backing file dir)
//
// Method: one 1 GiB backing file, fully written first so it sits in the page cache. The targets
// never run at the same time (ours takes an flock on the file; tgt does not, and concurrent
// servers would compete for the 2 cores anyway): each round starts one target, runs a short
// warm-up and the five workloads, stops it, then does the same with the other; the order of the
// targets alternates between rounds. Each workload is a single `qemu-img bench` process (one
// iSCSI session); its "Run completed in X seconds" gives IOPS and MiB/s. Reported: medians over
// the rounds and the glfs/tgt ratio of the medians. tgt exports the file as LUN 1 (LUN 0 is its
// controller), glfs-target as LUN 0. glfs-target runs from dist/ (whatever was built last).
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { canConnect, freePort } from '../test/support/ports.mjs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 * 1024;
const LUN_BYTES = 1024 * MiB;

// Counts sized for ~2-4 s each on a 2-core VM against tgt; --scale adjusts, --quick divides by 10.
const WORKLOADS = [
  { name: '4k read QD32', size: 4096, depth: 32, write: false, count: 100_000 },
  { name: '4k write QD32', size: 4096, depth: 32, write: true, count: 80_000 },
  { name: '4k write QD1', size: 4096, depth: 1, write: true, count: 40_000 },
  { name: '1M read QD8', size: MiB, depth: 8, write: false, count: 2_500 },
  { name: '1M write QD8', size: MiB, depth: 8, write: true, count: 1_500 },
];

function parseArgs(argv) {
  const o = { rounds: 5, quick: false, only: null, build: false, scale: 1, json: null, dir: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    if (a === '--rounds') o.rounds = Number(val());
    else if (a === '--quick') o.quick = true;
    else if (a === '--only') o.only = val();
    else if (a === '--build') o.build = true;
    else if (a === '--scale') o.scale = Number(val());
    else if (a === '--json') o.json = val();
    else if (a === '--dir') o.dir = val();
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.only !== null && o.only !== 'glfs' && o.only !== 'tgt') throw new Error('--only takes glfs or tgt');
  if (!(o.rounds >= 1) || !(o.scale > 0)) throw new Error('bad --rounds/--scale');
  if (o.quick) { o.rounds = 1; o.scale /= 10; }
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


function tryExec(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15000 }).trim(); } catch { return null; }
}

function run(cmd, args, timeoutMs) {
  return new Promise((res) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    let timedOut = false;
    const t = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { out += `\nspawn error: ${e.message}`; });
    child.on('close', (code) => { clearTimeout(t); res({ code, out, timedOut }); });
  });
}

function spawnLogged(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let log = '';
  const add = (d) => { log += d; if (log.length > 1_000_000) log = log.slice(-500_000); };
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  let gone = false;
  const exited = new Promise((r) => child.on('exit', (code, signal) => { gone = true; r({ code, signal }); }));
  return { child, exited, log: () => log, gone: () => gone };
}

async function waitPort(port, proc, what) {
  const deadline = Date.now() + 15000;
  while (!(await canConnect(port))) {
    if (proc.gone()) throw new Error(`${what} exited during startup:\n${proc.log()}`);
    if (Date.now() > deadline) throw new Error(`${what} not listening on ${port} after 15 s:\n${proc.log()}`);
    await sleep(100);
  }
}

async function startGlfs(file, dir) {
  const port = await freePort();
  const iqn = 'iqn.2016-06.org.gluster:bench';
  const cfg = join(dir, 'glfs-config.json');
  writeFileSync(cfg, JSON.stringify({
    portals: [`127.0.0.1:${port}`],
    targets: [{ iqn, luns: [{ lun: 0, path: file, size: '1G', readOnly: false }], acl: [{ initiator: '*' }] }],
    iscsi: { headerDigest: ['None', 'CRC32C'], dataDigest: ['None', 'CRC32C'], immediateData: true, initialR2T: false, maxRecvDataSegmentLength: 262144 },
    logLevel: 'warn',
  }, null, 2));
  const proc = spawnLogged(process.execPath, [join(REPO, 'bin', 'glfs-target.js'), 'serve', '--config', cfg], { cwd: REPO });
  await waitPort(port, proc, 'glfs-target');
  return {
    url: `iscsi://127.0.0.1:${port}/${iqn}/0`,
    async stop() {
      if (proc.gone()) throw new Error(`glfs-target died during the run:\n${proc.log().slice(-4000)}`);
      proc.child.kill('SIGTERM');
      const t = setTimeout(() => proc.child.kill('SIGKILL'), 10000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

async function startTgt(file) {
  const port = await freePort();
  let ctl = null;
  for (let i = 0; i < 100 && ctl === null; i++) {
    const n = 1000 + ((port + i) % 31000);
    if (tryExec('tgtadm', ['-C', String(n), '--lld', 'iscsi', '--op', 'show', '--mode', 'sys']) === null) ctl = String(n);
  }
  if (ctl === null) throw new Error('no free tgtd control port');
  const iqn = 'iqn.2016-06.org.gluster:bench-tgt';
  const proc = spawnLogged('tgtd', ['-f', '-C', ctl, '--iscsi', `portal=127.0.0.1:${port}`]);
  const adm = (...a) => execFileSync('tgtadm', ['-C', ctl, '--lld', 'iscsi', ...a], { stdio: 'pipe', timeout: 15000 });
  const deadline = Date.now() + 15000;
  for (;;) {
    try { adm('--op', 'show', '--mode', 'sys'); break; } catch (e) {
      if (proc.gone() || Date.now() > deadline) { proc.child.kill('SIGKILL'); throw new Error(`tgtd did not start: ${e}\n${proc.log()}`); }
      await sleep(100);
    }
  }
  adm('--op', 'new', '--mode', 'target', '--tid', '1', '-T', iqn);
  adm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', file);
  adm('--op', 'bind', '--mode', 'target', '--tid', '1', '-I', 'ALL');
  await waitPort(port, proc, 'tgtd');
  return {
    url: `iscsi://127.0.0.1:${port}/${iqn}/1`,
    async stop() {
      if (proc.gone()) throw new Error(`tgtd died during the run:\n${proc.log().slice(-4000)}`);
      proc.child.kill('SIGKILL'); // tgtd ignores SIGTERM; its rdwr store uses pwrite()
      await proc.exited;
      for (const f of [`socket.${ctl}`, `socket.${ctl}.lock`]) rmSync(join('/var/run/tgtd', f), { force: true });
    },
  };
}

async function bench(url, w, count) {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-c', String(count), '-d', String(w.depth), '-s', String(w.size), ...(w.write ? ['-w'] : []), url];
  const r = await run('qemu-img', args, 300_000);
  const m = /Run completed in ([\d.]+) seconds/.exec(r.out);
  if (r.code !== 0 || !m) throw new Error(`qemu-img ${args.join(' ')} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.out}`);
  const secs = Number(m[1]);
  return { secs, iops: count / secs, mibs: (count * w.size) / secs / MiB };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');

function prepareBackingFile(file) {
  // Write every byte (non-zero) so the file is fully allocated and resident in the page cache.
  const buf = Buffer.alloc(4 * MiB);
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = openSync(file, 'w');
  for (let off = 0; off < LUN_BYTES; off += buf.length) writeSync(fd, buf, 0, buf.length, off);
  closeSync(fd);
}

async function main() {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(e.message); return 2; }
  if (o.help) { console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 8).join('\n')); return 0; }
  const targets = o.only ? [o.only] : ['glfs', 'tgt'];
  for (const tool of ['qemu-img', ...(targets.includes('tgt') ? ['tgtd', 'tgtadm'] : [])]) {
    if (tryExec('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`]) === null) { console.error(`missing tool: ${tool}`); return 2; }
  }
  if (targets.includes('glfs') && (o.build || !existsSync(join(REPO, 'dist', 'cli.js')))) {
    console.error('[bench] npm run build');
    execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit' });
  }

  const dir = o.dir ? mkdtempSync(join(o.dir, 'glfs-bench-')) : mkdtempSync(join(tmpdir(), 'glfs-bench-'));
  const file = join(dir, 'lun.img');
  const results = Object.fromEntries(targets.map((t) => [t, Object.fromEntries(WORKLOADS.map((w) => [w.name, []]))]));
  const started = new Date();
  let running = null;
  const cleanup = async () => {
    if (running) { try { await running.stop(); } catch { /* already reporting an error */ } running = null; }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)); });
  try {
    console.error(`[bench] writing 1 GiB backing file in ${dir}`);
    prepareBackingFile(file);
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        running = t === 'glfs' ? await startGlfs(file, dir) : await startTgt(file);
        // Warm-up (JIT, connection setup paths, caches): not measured.
        await bench(running.url, WORKLOADS[0], Math.max(200, Math.round(5000 * o.scale)));
        await bench(running.url, WORKLOADS[1], Math.max(200, Math.round(5000 * o.scale)));
        for (const w of WORKLOADS) {
          const count = Math.max(w.depth * 4, Math.round(w.count * o.scale));
          const r = await bench(running.url, w, count);
          results[t][w.name].push({ ...r, count });
          console.error(`[bench] round ${round + 1}/${o.rounds} ${t.padEnd(4)} ${w.name.padEnd(14)} ${fmt(r.iops)} IOPS ${fmt(r.mibs, 1)} MiB/s (${r.secs} s)`);
        }
        const s = running;
        running = null;
        await s.stop();
      }
    }
  } catch (e) {
    console.error(`[bench] failed: ${e.stack ?? e}`);
    await cleanup();
    return 1;
  }
  await cleanup();

  const env = [
    `date ${started.toISOString()}`, `${cpus().length} CPU (${cpus()[0]?.model ?? '?'})`, `load ${tryExec('cat', ['/proc/loadavg'])?.split(' ').slice(0, 3).join(' ') ?? '?'}`,
    `node ${process.version}`, tryExec('qemu-img', ['--version'])?.split('\n')[0] ?? 'qemu-img ?',
    targets.includes('tgt') ? `tgt ${tryExec('dpkg-query', ['-W', '-f=${Version}', 'tgt']) ?? '?'}` : null,
    `rounds ${o.rounds}${o.quick ? ' (quick)' : ''}, scale ${o.scale}`,
  ].filter(Boolean).join('; ');
  const lines = [];
  const both = targets.length === 2;
  lines.push(`qemu-img bench, 1 GiB LUN, -t none; median of ${o.rounds} round(s). ${env}`, '');
  if (both) {
    lines.push('| workload | glfs IOPS | glfs MiB/s | tgt IOPS | tgt MiB/s | glfs/tgt |', '|---|---:|---:|---:|---:|---:|');
  } else {
    lines.push(`| workload | ${targets[0]} IOPS | ${targets[0]} MiB/s | runs (s) |`, '|---|---:|---:|---|');
  }
  const summary = {};
  for (const w of WORKLOADS) {
    const m = Object.fromEntries(targets.map((t) => [t, {
      iops: median(results[t][w.name].map((r) => r.iops)),
      mibs: median(results[t][w.name].map((r) => r.mibs)),
    }]));
    summary[w.name] = m;
    if (both) {
      const ratio = m.glfs.iops / m.tgt.iops;
      m.ratio = ratio;
      lines.push(`| ${w.name} | ${fmt(m.glfs.iops)} | ${fmt(m.glfs.mibs, 1)} | ${fmt(m.tgt.iops)} | ${fmt(m.tgt.mibs, 1)} | ${fmt(ratio, 2)} |`);
    } else {
      const t = targets[0];
      lines.push(`| ${w.name} | ${fmt(m[t].iops)} | ${fmt(m[t].mibs, 1)} | ${results[t][w.name].map((r) => r.secs).join(', ')} |`);
    }
  }
  console.log(lines.join('\n'));
  if (o.json) writeFileSync(o.json, JSON.stringify({ env, options: o, workloads: WORKLOADS, results, summary }, null, 2) + '\n');
  return 0;
}

main().then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; });
