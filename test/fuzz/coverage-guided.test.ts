/**
 * Short, deterministic runs of the coverage-guided fuzz targets (test/fuzz/targets): a fixed
 * seed and a fixed number of executions each. `npm run fuzz` runs them for long.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUNS = 100_000;

describe('coverage-guided fuzz targets (short run)', () => {
  for (const name of ['framer', 'text', 'login', 'scsi']) {
    it(`${name}: ${RUNS} executions from seed 1 find nothing`, () => {
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--import', './test/fuzz/engine/instrument.ts', 'test/fuzz/run.ts', name, '--seed', '1', '--runs', String(RUNS), '--seconds', '40'],
        { cwd: repo, encoding: 'utf8', timeout: 55_000 },
      );
      expect(run.stderr + run.stdout).toMatch(new RegExp(`^${name}: ${RUNS} executions`, 'm'));
      expect(run.status, run.stderr).toBe(0);
    });
  }
});
