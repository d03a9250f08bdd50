/**
 * fio run directly on the LUN file: the ceiling for the gluster mode. Same request size, depth,
 * sequential pattern and request count as the qemu-img workload, and the same open mode as
 * glfs-target's: O_DIRECT on a FUSE mount (src/backend/file-backend.ts: the page cache of one
 * node would go stale when another node writes), unless the bench is told otherwise.
 */
import { run } from '../test/e2e/harness.js';
import { LUN_BYTES, measurement, type Measurement, type Workload } from './workloads.js';

/**
 * The default engine. On a buffered file on a FUSE mount no engine gets more than one write into
 * the file at a time (FUSE holds the inode lock across each buffered write; reads are page-cache
 * copies), and the async engines only add a hop: io_uring punts every buffered FUSE write to an
 * io-wq thread, libaio's io_submit runs buffered I/O synchronously, posixaio uses a helper thread.
 * psync was best or tied on every workload (docs/benchmarks.md, "Gluster FUSE mode").
 */
export const FIO_ENGINE = 'psync';

interface FioDir { total_ios: number; runtime: number; io_bytes: number; clat_ns?: { percentile?: Record<string, number> } }
interface FioJob { jobname: string; error: number; read: FioDir; write: FioDir }

export function fioArgs(file: string, w: Workload, count: number, engine: string, direct: boolean): string[] {
  return [`--name=${w.name.replace(/\s+/g, '-')}`, `--filename=${file}`, `--ioengine=${engine}`, `--direct=${direct ? 1 : 0}`,
    // rw=read:N skips N bytes after each request: the strided pattern of qemu-img bench -S.
    `--rw=${w.write ? 'write' : 'read'}${w.step !== undefined && w.step !== w.size ? `:${w.step - w.size}` : ''}`, `--bs=${w.size}`, `--iodepth=${w.depth}`,
    // Sequential over the whole file, wrapping like qemu-img bench, for exactly `count` requests.
    `--size=${LUN_BYTES}`, `--io_size=${count * w.size}`,
    // Leave the page cache as the target finds it (fio would drop the file's pages first) and
    // give the kernel no access-pattern hint the target does not give either.
    '--invalidate=0', '--fadvise_hint=0', '--output-format=json'];
}

/** Runs one workload with fio on `file`; the time is fio's runtime for the job's I/O direction. */
export async function fioBench(file: string, w: Workload, count: number, engine: string, direct: boolean): Promise<Measurement> {
  const args = fioArgs(file, w, count, engine, direct);
  const r = await run('fio', args, { timeout: 300_000 });
  // Notes (e.g. "queue depth will be capped at 1" for sync engines) precede the JSON on stdout.
  const json = r.stdout.slice(Math.max(0, r.stdout.search(/^\{/m)));
  let job: FioJob | undefined;
  try { job = (JSON.parse(json) as { jobs: FioJob[] }).jobs[0]; } catch { /* reported below */ }
  const dir = job && (w.write ? job.write : job.read);
  if (r.code !== 0 || !job || !dir || job.error !== 0 || dir.total_ios !== count || !(dir.runtime > 0)) {
    throw new Error(`fio ${args.join(' ')} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stdout.slice(0, 4000)}${r.stderr}`);
  }
  const m = measurement(w, count, dir.runtime / 1000);
  const pct = dir.clat_ns?.percentile;
  if (w.depth === 1 && pct?.['50.000000'] !== undefined && pct['99.000000'] !== undefined) {
    m.latency = { p50Us: pct['50.000000'] / 1000, p99Us: pct['99.000000'] / 1000 };
  }
  return m;
}
