/** A short, seeded run of the network mutation fuzzer (test/fuzz/network/run.ts) against a real server. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

it('network mutation fuzzer: 20 s from seed 1, the server survives, answers parse, a fresh session works, RSS stays bounded', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fuzz/network/run.ts', '--seed', '1', '--seconds', '20'], {
    cwd: repo, encoding: 'utf8', timeout: 50_000,
  });
  expect(run.stdout).toMatch(/^network: [1-9]\d* rounds/m);
  expect(run.status, run.stderr + run.stdout).toBe(0);
});
