/**
 * The benchmark workloads, the 1 GiB backing file they run on, and the `qemu-img bench`
 * runner (QEMU's iSCSI driver = libiscsi) that drives a target with them.
 */
import { open } from 'node:fs/promises';
import { run } from '../test/e2e/harness.js';

export const MiB = 1024 * 1024;
export const LUN_BYTES = 1024 * MiB;

export interface Workload {
  name: string;
  /** Request size in bytes. */
  size: number;
  /** Requests in flight. */
  depth: number;
  write: boolean;
  /** Requests per run at --scale 1. */
  count: number;
  /** Distance from one request's offset to the next (default: the request size, i.e. sequential). */
  step?: number;
}

/** One run of one workload. */
export interface Measurement {
  secs: number;
  iops: number;
  mibs: number;
  count: number;
  /** QD1 workloads: completion latency percentiles, microseconds (bench/latency.ts; fio's own for fio). */
  latency?: { p50Us: number; p99Us: number };
}

// Counts sized for ~2-4 s each on a 2-core VM against tgt; --scale adjusts, --quick divides by 10.
// Access is sequential (qemu-img bench's default step is the request size, wrapping at the end of
// the image); at QD1 every request waits for the one before, so each pays the whole round trip
// (what a database's synchronous reads and writes feel). The exception is the strided read: 4 KiB every 1 MiB + 4 KiB, so no two requests in flight
// are adjacent and nothing can be merged or read ahead: it stands for random access.
export const WORKLOADS: readonly Workload[] = [
  { name: '4k read QD32', size: 4096, depth: 32, write: false, count: 100_000 },
  { name: '4k write QD32', size: 4096, depth: 32, write: true, count: 80_000 },
  { name: '4k write QD1', size: 4096, depth: 1, write: true, count: 40_000 },
  { name: '4k read QD1', size: 4096, depth: 1, write: false, count: 40_000 },
  { name: '1M read QD8', size: MiB, depth: 8, write: false, count: 2_500 },
  { name: '1M write QD8', size: MiB, depth: 8, write: true, count: 1_500 },
  { name: '4k strided read QD32', size: 4096, depth: 32, write: false, count: 60_000, step: MiB + 4096 },
];

export function measurement(w: Workload, count: number, secs: number): Measurement {
  return { secs, iops: count / secs, mibs: (count * w.size) / secs / MiB, count };
}

/** Writes every byte of a LUN_BYTES file (non-zero), so it is fully allocated and in the page cache. */
export async function fillBackingFile(path: string): Promise<void> {
  const buf = Buffer.alloc(4 * MiB);
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i);
  const f = await open(path, 'w');
  try {
    for (let off = 0; off < LUN_BYTES; off += buf.length) await f.write(buf, 0, buf.length, off);
  } finally {
    await f.close();
  }
}

/** `qemu-img bench` of one workload against an iSCSI URL; its "Run completed in X seconds" is the time. */
export async function qemuImgBench(url: string, w: Workload, count: number): Promise<Measurement> {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-c', String(count), '-d', String(w.depth), '-s', String(w.size),
    ...(w.step !== undefined ? ['-S', String(w.step)] : []), ...(w.write ? ['-w'] : []), url];
  const r = await run('qemu-img', args, { timeout: 300_000 });
  const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout);
  if (r.code !== 0 || !m) {
    throw new Error(`qemu-img ${args.join(' ')} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stdout}${r.stderr}`);
  }
  return measurement(w, count, Number(m[1]));
}
