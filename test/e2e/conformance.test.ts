/**
 * libiscsi's conformance suite (iscsi-test-cu, ~615 tests) against glfs-target, through
 * test/conformance/run-test-cu.mjs. Always: the suite must run to the end and the target must
 * survive it. The result lands in test/conformance/results/glfs-latest/ (summary.md/json, log).
 * With "mode: enforce" in test/conformance/known-failures.txt (or CONFORMANCE_ENFORCE=1), any
 * failing test not listed there fails this test.
 * E2E_TARGET=tgt points it at tgtd instead; E2E_SKIP_CONFORMANCE=1 skips it (takes minutes);
 * CONFORMANCE_TEST=FAMILY[.Suite[.Test]] runs a subset (then the ">500 tests" check is relaxed).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closeSync, ftruncateSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  REPO_ROOT, canConnect, describeRun, freePort, prereqs, run, startGlfsTarget, startTgt, tempDir,
  type TargetHandle,
} from './harness.js';

const USE_TGT = process.env.E2E_TARGET === 'tgt';
const SKIP = /^(1|true|yes)$/i.test(process.env.E2E_SKIP_CONFORMANCE ?? '');
const pre = prereqs({ tools: ['iscsi-test-cu', ...(USE_TGT ? ['tgtd', 'tgtadm'] : [])], server: !USE_TGT });
const SCRIPT = join(REPO_ROOT, 'test', 'conformance', 'run-test-cu.mjs');
const KNOWN = join(REPO_ROOT, 'test', 'conformance', 'known-failures.txt');
const OUT = join(REPO_ROOT, 'test', 'conformance', 'results', USE_TGT ? 'tgt-latest' : 'glfs-latest');
const SUITE_TIMEOUT_S = Number(process.env.CONFORMANCE_TIMEOUT ?? 1500);
const SUBSET = process.env.CONFORMANCE_TEST || undefined;

interface Summary {
  completed: boolean;
  counts: { total: number; passed: number; skipped: number; failed: number; incomplete: number };
  summary: { tests?: { total: number; ran: number } } | null;
  lastTest: string | null;
  known: { unexpected: string[]; nowPassing: string[]; mode: 'record' | 'enforce' } | null;
}

function enforcing(mode: string | undefined): boolean {
  const env = process.env.CONFORMANCE_ENFORCE;
  if (env !== undefined && env !== '') return /^(1|true|yes)$/i.test(env);
  return mode === 'enforce';
}

describe.skipIf(pre.skip || SKIP)(`iscsi-test-cu conformance against ${USE_TGT ? 'tgt' : 'glfs-target'}`, () => {
  let t: TargetHandle;
  let tmp: ReturnType<typeof tempDir> | undefined;

  beforeAll(async () => {
    pre.assert();
    if (USE_TGT) {
      tmp = tempDir('tgt-cu-');
      const f = join(tmp.dir, 'lun.img');
      const fd = openSync(f, 'w');
      ftruncateSync(fd, 1024 ** 3);
      closeSync(fd);
      t = await startTgt({ backingFile: f, port: await freePort() });
    } else {
      // LUN 1: a write-protected LUN for the *.ReadOnly suites (run-test-cu.mjs --readonly-url).
      tmp = tempDir('glfs-cu-');
      const ro = join(tmp.dir, 'ro.img');
      const fd = openSync(ro, 'w');
      ftruncateSync(fd, 64 * 1024 ** 2);
      closeSync(fd);
      t = await startGlfsTarget({ luns: [{ size: '1G' }, { size: '64M', path: ro, readOnly: true }], logLevel: 'warn' });
    }
  });

  afterAll(async () => {
    await t?.stop();
    tmp?.cleanup();
  });

  test('runs to the end, the target survives, failures stay within the known list', { timeout: (SUITE_TIMEOUT_S + 120) * 1000 }, async () => {
    const r = await run(process.execPath, [
      SCRIPT, '--url', t.url(), '--label', USE_TGT ? 'tgt' : 'glfs-target', '--out', OUT,
      '--timeout', String(SUITE_TIMEOUT_S), '--known-failures', KNOWN, '--quiet', '--multipath',
      ...(USE_TGT ? [] : ['--readonly-url', t.url(1)]),
      ...(SUBSET ? ['--test', SUBSET] : []),
    ], { timeout: (SUITE_TIMEOUT_S + 60) * 1000 });
    expect([0, 1, 2], describeRun(r)).toContain(r.code); // 3 = the runner itself failed

    const s = JSON.parse(readFileSync(join(OUT, 'summary.json'), 'utf8')) as Summary;
    const md = readFileSync(join(OUT, 'summary.md'), 'utf8');
    console.log(md.split('\n').slice(0, 12).join('\n'));

    // The target is still up and serving the same process after everything the suite threw at it.
    expect(await canConnect(t.port), `target gone after the suite; last test ${s.lastTest}\n${t.logs().slice(-4000)}`).toBe(true);
    expect(t.lastExit(), t.logs().slice(-4000)).toBeUndefined();

    expect(s.completed, `suite did not run to the end (last test: ${s.lastTest}); see ${OUT}/test-cu.log`).toBe(true);
    expect(s.summary?.tests?.total).toBeGreaterThan(SUBSET ? 0 : 500);
    expect(s.counts.total).toBe(s.summary?.tests?.total);
    expect(s.counts.incomplete).toBe(0);

    if (enforcing(s.known?.mode)) {
      expect(s.known?.unexpected, `unexpected iscsi-test-cu failures (see ${OUT}/summary.md)`).toEqual([]);
    }
    if (s.known?.nowPassing.length) console.log(`known failures now passing (prune known-failures.txt): ${s.known.nowPassing.join(', ')}`);
  });
});
