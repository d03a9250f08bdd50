/**
 * libiscsi's persistent reservation suites (iscsi-test-cu `ALL.Prout*`, `ALL.Prin*`) against one
 * LUN file served by two glfs-target nodes over two gluster clients, with the suite's second
 * ("multipath") URL on the other node: once through the node that owns the LU, and again after
 * that node was killed and the LU failed over to the other — the reservation state the suite
 * builds lives in the file's state directory, so the new owner starts from what the old one
 * committed.
 *
 * The suites run through the owner's portal. Through a standby portal the suites' first READ or
 * WRITE moves the LU (implicit ALUA transition), and SPC-4 then reports ASYMMETRIC ACCESS STATE
 * CHANGED (2Ah/06h) to the suite's other session, which it does not expect; and MultipathIO,
 * which alternates I/O between both URLs as if both paths were active, is the lock ping-pong
 * this design refuses (docs/high-availability.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, sleep, startGlfsTarget, which, type TargetHandle } from '../e2e/harness.js';
import { recordTiming } from '../vm/vm.js';
import { GlusterVolume, glusterMissing } from './gluster.js';
// @ts-expect-error plain ESM script without types
import { parseRun, runSuite } from '../conformance/run-test-cu.mjs';

const missing = [glusterMissing(), which('iscsi-test-cu') ? '' : "tool 'iscsi-test-cu' not found"].filter(Boolean).join('; ');
const ci = process.env.CI === 'true';
const IQN = 'iqn.2016-06.org.gluster:app-store';

interface SuiteRun { counts: { total: number; passed: number; failed: number; incomplete: number }; tests: Array<{ name: string; status: string; message: string }> }

describe.skipIf(missing !== '' && !ci)('iscsi-test-cu persistent reservations across two nodes serving one LUN file', () => {
  let vol: GlusterVolume;
  const mounts: string[] = [];
  const ports: number[] = [];
  const nodes: Array<TargetHandle | undefined> = [];
  const t0 = Date.now();

  const start = (i: number) => startGlfsTarget({
    iqn: IQN,
    portals: [`127.0.0.1:${ports[i]}`],
    luns: [{ size: '256M', path: join(mounts[i]!, 'app-store.img') }],
    env: { GLFS_TARGET_NODE: `node${i + 1}` },
    startTimeoutMs: 60_000,
  });
  const url = (i: number) => `iscsi://127.0.0.1:${ports[i]}/${IQN}/0`;

  /** The PR suites through node `owner`'s portal, the other node's as the multipath URL. */
  async function prSuites(owner: number): Promise<void> {
    for (const pattern of ['ALL.Prout*', 'ALL.Prin*']) {
      const r = await runSuite({ url: url(owner), multipath: url(1 - owner), test: pattern, timeoutSec: 600 }) as { log: string; stopReason: string | null };
      const parsed = parseRun(r.log) as SuiteRun;
      const failed = parsed.tests.filter((t) => t.status !== 'passed' && t.status !== 'skipped');
      expect(r.stopReason, `${pattern} ran to the end`).toBeNull();
      expect(parsed.counts.total, `${pattern}: tests run`).toBeGreaterThan(0);
      expect(failed.map((t) => `${t.name}: ${t.message}`).join('\n'), `${pattern} through node${owner + 1}`).toBe('');
    }
  }

  beforeAll(async () => {
    if (missing !== '') throw new Error(`two-node conformance suite needs: ${missing}`);
    vol = await GlusterVolume.create(`glfs-mncu-${process.pid}`);
    mounts.push(...(await vol.nodeMounts(2)));
    for (let i = 0; i < 2; i++) ports.push(await freePort());
    nodes[0] = await start(0); // node1 first: it owns the LU
    nodes[1] = await start(1);
  }, 240_000);

  afterAll(async () => {
    recordTiming('gluster-multi-node-conformance', Date.now() - t0);
    for (const n of nodes) await n?.stop().catch(() => undefined);
    await vol?.stop();
  }, 120_000);

  test('through the owner, node2 as the multipath URL: every PR test passes', async () => {
    await prSuites(0);
  }, 900_000);

  test('after the owner was killed and node2 took over, through node2: every PR test passes', async () => {
    await nodes[0]!.kill('SIGKILL');
    const ownerFile = join(mounts[1]!, 'app-store.img.glfs-target', 'owner.json');
    for (let i = 0; i < 100 && (JSON.parse(readFileSync(ownerFile, 'utf8')) as { node: string }).node !== 'node2'; i++) await sleep(200);
    expect((JSON.parse(readFileSync(ownerFile, 'utf8')) as { node: string }).node, 'node2 took over').toBe('node2');
    await nodes[0]!.restart(); // back as standby: node2 holds the lock
    await prSuites(1);
  }, 900_000);
});
