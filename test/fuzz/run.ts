/**
 * Runs one coverage-guided fuzz target (test/fuzz/targets/<name>.ts):
 *
 *   node --import tsx --import ./test/fuzz/engine/instrument.ts test/fuzz/run.ts <name> \
 *     [--seed N] [--runs N] [--seconds S] [--replay file]
 *
 * Exit 0: no finding; 1: a finding (the input is saved under $FUZZ_FINDINGS_DIR, default
 * test/fuzz/findings/); 2: bad usage.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { FuzzTarget } from './engine/fuzz-target.js';
import { fuzz } from './engine/fuzz-loop.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: 'string', default: '1' },
    runs: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
    seconds: { type: 'string', default: '10' },
    replay: { type: 'string' },
  },
});
const name = positionals[0];
if (name === undefined || !/^[a-z-]+$/.test(name)) {
  console.error('usage: run.ts <target> [--seed N] [--runs N] [--seconds S] [--replay file]');
  process.exit(2);
}
const { target } = (await import(`./targets/${name}.js`)) as { target: FuzzTarget };

if (values.replay !== undefined) {
  await target.run(readFileSync(values.replay));
  console.log(`${name}: ${values.replay} passes`);
  process.exit(0);
}

const report = await fuzz(target, {
  seed: Number(values.seed),
  runs: Number(values.runs),
  seconds: Number(values.seconds),
  runTimeoutMs: 5000,
  findingsDir: process.env.FUZZ_FINDINGS_DIR ?? path.join(here, 'findings'),
});
const rate = Math.round(report.executions / report.seconds);
console.log(
  `${name}: ${report.executions} executions in ${report.seconds.toFixed(1)} s (${rate}/s), ` +
    `corpus ${report.corpusSize}, edges ${report.edges.covered}/${report.edges.total}`,
);
if (report.finding) {
  console.error(`${name}: FINDING, input saved as ${report.finding.file}`);
  console.error(report.finding.error);
  process.exit(1);
}
process.exit(0);
