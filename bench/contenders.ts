/**
 * What a benchmark compares: glfs-target and tgt (driven by `qemu-img bench` over iSCSI) and fio
 * (directly on the file), all on the same backing file, and the alternated rounds that run them.
 */
import { freePort, startGlfsTarget, startTgt, type TargetHandle } from '../test/e2e/harness.js';
import { fioBench } from './fio.js';
import { fmt } from './report.js';
import { iscsiLatency } from './latency.js';
import { LUN_BYTES, qemuImgBench, type Measurement, type Workload } from './workloads.js';

export interface Session {
  run(w: Workload, count: number): Promise<Measurement>;
  stop(): Promise<void>;
}

export interface Contender {
  name: string;
  start(): Promise<Session>;
}

/** Commands timed one by one after a QD1 workload's qemu-img run (bench/latency.ts). */
const LATENCY_COUNT = 5000;

/** An iSCSI target driven by qemu-img bench; stop() fails if the server died during the run. */
function targetSession(t: TargetHandle, what: string): Session {
  return {
    async run(w, count) {
      const m = await qemuImgBench(t.url(), w, count);
      if (w.depth === 1) m.latency = await iscsiLatency(t.url(), w, Math.min(count, LATENCY_COUNT), LUN_BYTES);
      return m;
    },
    async stop() {
      const died = t.lastExit();
      await t.stop();
      if (died) throw new Error(`${what} died during the run (${JSON.stringify(died)}):\n${t.logs().slice(-4000)}`);
    },
  };
}

/** glfs-target from dist/ serving `file` as LUN 0. */
export const glfsContender = (file: string): Contender => ({
  name: 'glfs',
  start: async () => targetSession(await startGlfsTarget({
    iqn: 'iqn.2016-06.org.gluster:bench', luns: [{ size: '1G', path: file }], logLevel: 'warn', startTimeoutMs: 30_000,
  }), 'glfs-target'),
});

/** tgtd serving `file` as LUN 1 (its LUN 0 is the controller). */
export const tgtContender = (file: string): Contender => ({
  name: 'tgt',
  start: async () => targetSession(await startTgt({
    backingFile: file, port: await freePort(), iqn: 'iqn.2016-06.org.gluster:bench-tgt',
  }), 'tgtd'),
});

/** fio on `file` itself, with O_DIRECT when `direct` (as the target opens it): nothing to start. */
export const fioContender = (file: string, engine: string, direct: boolean): Contender => ({
  name: 'fio',
  start: async () => ({ run: (w, count) => fioBench(file, w, count, engine, direct), stop: async () => undefined }),
});

/** results[contender][workload] = one measurement per round. */
export type Results = Record<string, Record<string, Measurement[]>>;

export interface RoundOpts {
  rounds: number;
  scale: number;
  /** Called with the session in progress (null when none), so a signal handler can stop it. */
  onSession(s: Session | null): void;
  log(line: string): void;
}

/**
 * Each round starts one contender at a time: a short warm-up (not measured), the workloads in
 * order, stop; then the next contender. The order of the contenders alternates between rounds.
 */
export async function runRounds(contenders: Contender[], workloads: readonly Workload[], o: RoundOpts): Promise<Results> {
  const results: Results = Object.fromEntries(contenders.map((c) => [c.name, Object.fromEntries(workloads.map((w) => [w.name, []]))]));
  const warmup = Math.max(200, Math.round(5000 * o.scale));
  for (let round = 0; round < o.rounds; round++) {
    const order = round % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      const s = await c.start();
      o.onSession(s);
      // Warm-up (JIT, connection setup paths, caches): 4k reads and writes.
      for (const w of workloads.slice(0, 2)) await s.run(w, warmup);
      for (const w of workloads) {
        const r = await s.run(w, Math.max(w.depth * 4, Math.round(w.count * o.scale)));
        results[c.name]![w.name]!.push(r);
        o.log(`round ${round + 1}/${o.rounds} ${c.name.padEnd(4)} ${w.name.padEnd(14)} ${fmt(r.iops)} IOPS ${fmt(r.mibs, 1)} MiB/s (${r.secs} s)`);
      }
      o.onSession(null);
      await s.stop();
    }
  }
  return results;
}
