import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dictionary, edgeCoverage, takeNewCoverage } from './coverage.js';
import type { FuzzTarget } from './fuzz-target.js';
import { mutate, Prng } from './mutate.js';

export interface FuzzOptions {
  seed: number;
  /** Stop after this many executions … */
  runs: number;
  /** … or this many seconds, whichever comes first. */
  seconds: number;
  /** One input taking longer than this is a finding (a hang). */
  runTimeoutMs: number;
  /** Where a failing input is written. */
  findingsDir: string;
}

export interface FuzzReport {
  executions: number;
  seconds: number;
  corpusSize: number;
  edges: { covered: number; total: number };
  finding?: { error: unknown; file: string };
}

/**
 * Coverage-guided loop: run the seeds, then mutate corpus entries; an input that reaches a new
 * edge (or a new hit-count bucket of one) joins the corpus. Stops at the first finding.
 */
export async function fuzz(target: FuzzTarget, o: FuzzOptions): Promise<FuzzReport> {
  const rng = new Prng(o.seed);
  const corpus: Buffer[] = [];
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  let executions = 0;
  let tokens: Buffer[] = [];
  const report = (finding?: FuzzReport['finding']): FuzzReport => ({
    executions, seconds: elapsed(), corpusSize: corpus.length, edges: edgeCoverage(), ...(finding ? { finding } : {}),
  });

  while (executions < o.runs && elapsed() < o.seconds) {
    const fromSeed = executions < target.seeds.length;
    const input = fromSeed ? target.seeds[executions]! : mutate(rng.pick(corpus.length > 0 ? corpus : target.seeds), rng, { dictionary: tokens, corpus }, target.maxLength);
    executions++;
    try {
      await withTimeout(target.run(input), o.runTimeoutMs);
    } catch (error) {
      return report({ error, file: saveFinding(target.name, input, o.findingsDir) });
    }
    if (takeNewCoverage() || fromSeed) {
      corpus.push(input);
      tokens = dictionary();
    }
  }
  return report();
}

async function withTimeout(result: void | Promise<void>, ms: number): Promise<void> {
  if (!(result instanceof Promise)) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`input did not finish within ${ms} ms (hang)`)), ms);
  });
  try {
    await Promise.race([result, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function saveFinding(name: string, input: Buffer, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${createHash('sha1').update(input).digest('hex').slice(0, 12)}.bin`);
  writeFileSync(file, input);
  return file;
}
