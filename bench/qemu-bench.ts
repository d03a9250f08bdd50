// Throughput of glfs-target with `qemu-img bench` (QEMU's iSCSI driver = libiscsi), in two modes.
//
//   npm run bench                          # vs tgt on a page-cached local file, 5 rounds (builds dist/ first if missing)
//   npm run bench:gluster                  # vs fio on a file on a gluster FUSE mount, 5 rounds (= npm run bench -- --gluster)
//   npx tsx bench/qemu-bench.ts --rounds 3 --only tgt
//   npx tsx bench/qemu-bench.ts --quick    # 1 round, small counts (smoke test); also with --gluster
//
// Options: --rounds N (5) | --quick | --only glfs|tgt|fio | --build (run `npm run build` first) |
//          --scale F (multiply request counts) | --json FILE (raw results) | --dir DIR (backing file dir, tgt mode) |
//          --gluster | --fio-engine NAME (psync; --gluster) | --fio-buffered (fio without O_DIRECT; --gluster) |
//          --workloads A,B (only the workloads whose names contain A or B, e.g. "QD1,strided")
//
// Method: one 1 GiB backing file, fully written first (so it is allocated and sits in the page
// cache). The contenders never run at the same time: each round starts one, runs a short warm-up
// and the workloads, stops it, then does the same with the other; the order alternates
// between rounds. Reported: medians over the rounds and the ratio of the IOPS medians.
//  - Default mode: glfs-target vs tgt, both serving the file in a temporary directory. Each
//    workload is a single `qemu-img bench` process (one iSCSI session); its "Run completed in X
//    seconds" gives IOPS and MiB/s. tgt exports the file as LUN 1 (LUN 0 is its controller),
//    glfs-target as LUN 0. glfs-target runs from dist/ (whatever was built last). After each QD1
//    run, the same workload is timed command by command for p50/p99 (bench/latency.ts).
//  - --gluster: a replica-3 volume on this host (test/gluster/gluster.ts: glusterd, three bricks and
//    the FUSE client in a private network namespace), FUSE-mounted, with the file on the mount.
//    glfs-target serving it, driven as above, vs fio directly on it with the same request size,
//    depth, sequential pattern and request count, with O_DIRECT (--direct=1) as the target opens
//    LUN files on a FUSE mount; fio's time is its job runtime, its QD1 latency its clat
//    percentiles (bench/fio.ts explains the engine). The FUSE mount is the ceiling. The volume
//    is torn down at the end, on error and on SIGINT/SIGTERM.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GLFS_ENTRY, REPO_ROOT, which } from '../test/e2e/harness.js';
import { GlusterVolume, glusterMissing } from '../test/gluster/gluster.js';
import { fioContender, glfsContender, runRounds, tgtContender, type Contender, type Session } from './contenders.js';
import { FIO_ENGINE } from './fio.js';
import { environment, latencyTable, resultTable, tryExec } from './report.js';
import { fillBackingFile, WORKLOADS } from './workloads.js';

interface Options {
  rounds: number; quick: boolean; only: string | null; build: boolean; scale: number; json: string | null;
  dir: string | null; gluster: boolean; fioEngine: string; fioBuffered: boolean; workloads: string[] | null; help?: boolean;
}

/** The two contenders of each mode. */
const modeNames = (gluster: boolean): string[] => (gluster ? ['glfs', 'fio'] : ['glfs', 'tgt']);

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 5, quick: false, only: null, build: false, scale: 1, json: null, dir: null, gluster: false, fioEngine: FIO_ENGINE, fioBuffered: false, workloads: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    if (a === '--rounds') o.rounds = Number(val());
    else if (a === '--quick') o.quick = true;
    else if (a === '--only') o.only = val();
    else if (a === '--build') o.build = true;
    else if (a === '--scale') o.scale = Number(val());
    else if (a === '--json') o.json = val();
    else if (a === '--dir') o.dir = val();
    else if (a === '--gluster') o.gluster = true;
    else if (a === '--fio-engine') o.fioEngine = val();
    else if (a === '--fio-buffered') o.fioBuffered = true;
    else if (a === '--workloads') o.workloads = val().split(',');
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  const names = modeNames(o.gluster);
  if (o.only !== null && !names.includes(o.only)) throw new Error(`--only takes ${names.join(' or ')}${o.gluster ? ' with --gluster' : ''}`);
  if (o.gluster && o.dir !== null) throw new Error('--dir does not apply with --gluster (the file is on the volume)');
  if (!(o.rounds >= 1) || !(o.scale > 0)) throw new Error('bad --rounds/--scale');
  if (o.workloads !== null && selected(o.workloads).length === 0) throw new Error(`--workloads matches none of: ${WORKLOADS.map((w) => w.name).join(', ')}`);
  if (o.quick) { o.rounds = 1; o.scale /= 10; }
  return o;
}

/** The workloads whose names contain one of `parts` (all of them without --workloads). */
const selected = (parts: string[] | null) => WORKLOADS.filter((w) => parts === null || parts.some((p) => w.name.includes(p)));

function missingTools(names: string[], gluster: boolean): string {
  const tools = [...(names.some((n) => n !== 'fio') ? ['qemu-img'] : []), ...(names.includes('tgt') ? ['tgtd', 'tgtadm'] : []),
    ...(names.includes('fio') ? ['fio'] : [])];
  return [...tools.filter((t) => !which(t)).map((t) => `missing tool: ${t}`), ...(gluster ? [glusterMissing()] : [])].filter(Boolean).join('; ');
}

const log = (line: string) => console.error(`[bench] ${line}`);

async function main(): Promise<number> {
  let o: Options;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error((e as Error).message); return 2; }
  if (o.help) {
    const head = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    console.log(head.slice(0, head.findIndex((l) => l.startsWith('// Method')) - 1).join('\n'));
    return 0;
  }
  const names = o.only ? [o.only] : modeNames(o.gluster);
  const missing = missingTools(names, o.gluster);
  if (missing) { console.error(missing); return 2; }
  if (names.includes('glfs') && (o.build || !existsSync(GLFS_ENTRY))) {
    log('npm run build');
    execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
  }

  let vol: GlusterVolume | null = null;
  let dir: string | null = null;
  let session: Session | null = null;
  // Once only: a Ctrl-C reaches qemu-img/fio too, so the failed run and the signal handler both get here.
  let cleaning: Promise<void> | null = null;
  const cleanup = () => (cleaning ??= (async () => {
    if (session) { try { await session.stop(); } catch { /* already reporting an error */ } }
    if (o.gluster) await (vol ? vol.stop() : GlusterVolume.teardownAll());
    if (dir) rmSync(dir, { recursive: true, force: true });
  })());
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(sig, () => {
      log(`${sig}: cleaning up`);
      // A qemu-img or fio in progress would outlive us (qemu-img keeps reconnecting to a stopped target).
      for (const pid of (tryExec('pgrep', ['-P', String(process.pid)]) ?? '').split('\n').map(Number).filter((n) => n > 0)) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      }
      cleanup().finally(() => process.exit(code));
    });
  }
  const workloads = selected(o.workloads);
  const started = new Date();
  let results;
  try {
    let file: string;
    if (o.gluster) {
      log('creating the gluster replica-3 volume');
      vol = await GlusterVolume.create('glfs-bench');
      file = join(vol.mount, 'lun.img');
    } else {
      dir = mkdtempSync(join(o.dir ?? tmpdir(), 'glfs-bench-'));
      file = join(dir, 'lun.img');
    }
    log(`writing 1 GiB backing file ${file}`);
    await fillBackingFile(file);
    const all: Contender[] = [glfsContender(file), o.gluster ? fioContender(file, o.fioEngine, !o.fioBuffered) : tgtContender(file)];
    results = await runRounds(all.filter((c) => names.includes(c.name)), workloads, {
      rounds: o.rounds, scale: o.scale, log, onSession: (s) => { session = s; },
    });
  } catch (e) {
    log(`failed: ${(e as Error).stack ?? e}`);
    await cleanup();
    return 1;
  }
  await cleanup();

  const rounds = `rounds ${o.rounds}${o.quick ? ' (quick)' : ''}, scale ${o.scale}`;
  const env = o.gluster
    ? environment(started, [`${tryExec('fio', ['--version']) ?? 'fio ?'} (${o.fioEngine}, direct=${o.fioBuffered ? 0 : 1})`,
      tryExec('glusterfs', ['--version'])?.split('\n')[0] ?? 'glusterfs ?', `kernel ${tryExec('uname', ['-r']) ?? '?'}`, rounds])
    : environment(started, [names.includes('tgt') ? `tgt ${tryExec('dpkg-query', ['-W', '-f=${Version}', 'tgt']) ?? '?'}` : null, rounds]);
  const title = o.gluster
    ? `1 GiB file on a gluster replica-3 FUSE mount; glfs: qemu-img bench -t none over iSCSI, fio: on the file; median of ${o.rounds} round(s).`
    : `qemu-img bench, 1 GiB LUN, -t none; median of ${o.rounds} round(s).`;
  const { lines, summary } = resultTable(names, workloads, results);
  const latency = latencyTable(names, workloads, results);
  console.log([`${title} ${env}`, '', ...lines, ...(latency.length > 0 ? ['', 'QD1 completion latency, µs (median over rounds of each run\'s p50 and p99):', '', ...latency] : [])].join('\n'));
  if (o.json) writeFileSync(o.json, JSON.stringify({ env, options: o, workloads, results, summary }, null, 2) + '\n');
  return 0;
}

main().then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; });
