// Server CPU per operation: user+sys time of the server process (/proc/PID/stat) around one
// `qemu-img bench` run of each workload, after a warm-up; glfs-target and tgt on the same file.
//
//   npx tsx bench/cpu-per-op.ts [--runs 2]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, processCpuMicros, startGlfsTarget, startTgt, type TargetHandle } from '../test/e2e/harness.js';
import { fillBackingFile, qemuImgBench, WORKLOADS } from './workloads.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '2' } } });
const cases = [['4k read QD32', 100_000], ['4k write QD32', 100_000], ['4k write QD1', 50_000], ['4k read QD1', 50_000], ['4k strided read QD32', 100_000]] as const;
const dir = mkdtempSync(join(tmpdir(), 'glfs-cpu-'));
const file = join(dir, 'lun.img');
try {
  await fillBackingFile(file);
  const starts: Array<[string, () => Promise<TargetHandle>]> = [
    ['glfs', () => startGlfsTarget({ iqn: 'iqn.2016-06.org.gluster:cpu', luns: [{ size: '1G', path: file }], logLevel: 'warn' })],
    ['tgt', async () => startTgt({ backingFile: file, port: await freePort(), iqn: 'iqn.2016-06.org.gluster:cpu-tgt' })],
  ];
  const rows: string[] = [];
  for (const [name, start] of starts) {
    const t = await start();
    try {
      const pid = t.pid()!;
      await qemuImgBench(t.url(), WORKLOADS[0]!, 5000);
      await qemuImgBench(t.url(), WORKLOADS[1]!, 5000);
      for (const [wname, count] of cases) {
        const w = WORKLOADS.find((x) => x.name === wname)!;
        const per: string[] = [];
        for (let i = 0; i < Number(values.runs); i++) {
          const before = processCpuMicros(pid);
          await qemuImgBench(t.url(), w, count);
          per.push(((processCpuMicros(pid) - before) / count).toFixed(1));
        }
        rows.push(`| ${name} | ${count.toLocaleString('en-US')} × ${wname} | ${per.join(', ')} µs |`);
      }
    } finally {
      await t.stop();
    }
  }
  console.log(['| target | run | CPU per operation |', '|---|---|---:|', ...rows].join('\n'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
