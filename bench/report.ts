/** Medians, the markdown result table and the environment line of a benchmark run. */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import type { Results } from './contenders.js';
import type { Workload } from './workloads.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export const fmt = (x: number, d = 0): string =>
  (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');

/** A command's trimmed stdout, or null if it fails. */
export function tryExec(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15000 }).trim();
  } catch {
    return null;
  }
}

/** "date …; N CPU (model); load …; node …; qemu-img …" followed by the mode's own items. */
export function environment(started: Date, extra: Array<string | null>): string {
  return [
    `date ${started.toISOString()}`, `${cpus().length} CPU (${cpus()[0]?.model ?? '?'})`,
    `load ${tryExec('cat', ['/proc/loadavg'])?.split(' ').slice(0, 3).join(' ') ?? '?'}`,
    `node ${process.version}`, tryExec('qemu-img', ['--version'])?.split('\n')[0] ?? 'qemu-img ?',
    ...extra,
  ].filter((s) => s !== null).join('; ');
}

interface Median { iops: number; mibs: number }
/** summary[workload][contender] = medians; with two contenders also summary[workload].ratio. */
export type Summary = Record<string, Record<string, Median | number>>;

/**
 * Medians per workload. With two contenders A and B: both medians and A/B of the IOPS medians;
 * with one: its medians and the seconds of each run.
 */
export function resultTable(names: string[], workloads: readonly Workload[], results: Results): { lines: string[]; summary: Summary } {
  const [a, b] = names as [string, string | undefined];
  const lines = b === undefined
    ? [`| workload | ${a} IOPS | ${a} MiB/s | runs (s) |`, '|---|---:|---:|---|']
    : [`| workload | ${a} IOPS | ${a} MiB/s | ${b} IOPS | ${b} MiB/s | ${a}/${b} |`, '|---|---:|---:|---:|---:|---:|'];
  const summary: Summary = {};
  for (const w of workloads) {
    const m: Record<string, Median> = Object.fromEntries(names.map((n) => [n, {
      iops: median(results[n]![w.name]!.map((r) => r.iops)),
      mibs: median(results[n]![w.name]!.map((r) => r.mibs)),
    }]));
    const ma = m[a]!;
    if (b === undefined) {
      summary[w.name] = m;
      lines.push(`| ${w.name} | ${fmt(ma.iops)} | ${fmt(ma.mibs, 1)} | ${results[a]![w.name]!.map((r) => r.secs).join(', ')} |`);
    } else {
      const mb = m[b]!;
      const ratio = ma.iops / mb.iops;
      summary[w.name] = { ...m, ratio };
      lines.push(`| ${w.name} | ${fmt(ma.iops)} | ${fmt(ma.mibs, 1)} | ${fmt(mb.iops)} | ${fmt(mb.mibs, 1)} | ${fmt(ratio, 2)} |`);
    }
  }
  return { lines, summary };
}

/** p50 and p99 latency of the QD1 workloads, medians over the rounds, per contender (empty without any). */
export function latencyTable(names: string[], workloads: readonly Workload[], results: Results): string[] {
  const rows = workloads.filter((w) => w.depth === 1 && names.some((n) => results[n]![w.name]!.some((r) => r.latency !== undefined)));
  if (rows.length === 0) return [];
  const cell = (n: string, w: Workload, k: 'p50Us' | 'p99Us') => fmt(median(results[n]![w.name]!.flatMap((r) => (r.latency ? [r.latency[k]] : []))));
  return [`| workload | ${names.map((n) => `${n} p50 | ${n} p99`).join(' | ')} |`, `|---|${names.map(() => '---:|---:').join('|')}|`,
    ...rows.map((w) => `| ${w.name} | ${names.map((n) => `${cell(n, w, 'p50Us')} | ${cell(n, w, 'p99Us')}`).join(' | ')} |`)];
}
