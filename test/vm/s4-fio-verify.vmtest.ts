/**
 * Scenario 4: fio verify soak on the raw iSCSI disk in the VM: randrw 4k QD32 with crc32c
 * verification. Short in CI (GLFS_FIO_SECONDS, default 20 s); `npm run test:vm:soak` runs 600 s.
 *
 *  a) randwrite 4k QD32 over 32 MiB, then every block read back and checked (do_verify);
 *  b) randrw 4k QD32 time-based with verify_backlog (reads check what was written, continuously);
 *  c) after logout + login, fio --verify_only re-checks the blocks of (a) that (b) did not touch.
 *
 * GLFS_VM_RELAY_COMPARE=1 also boots a second VM whose relay has TCP_QUICKACK off and reports
 * the IOPS of both (the relay's reason for re-arming QUICKACK).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TargetHandle } from '../e2e/harness.js';
import { describeStep, recordTiming, vmPrereqs, type Vm } from './vm.js';
import { ONE_LUN_BYTES, byPath, fioArgs, login, logout, oneLunSession, parseFio, waitDevice, type FioSummary } from './scenarios.js';

const pre = vmPrereqs();
const SECONDS = Number(process.env.GLFS_FIO_SECONDS ?? 20);
const IQN = 'iqn.2016-06.org.gluster:vm-fio';

function fioOk(f: FioSummary, what: string): void {
  const msg = `${what}: code=${f.code} error=${f.error}\n${f.stderr}\n${f.raw.slice(0, 4000)}`;
  expect(f.code, msg).toBe(0);
  expect(f.error, msg).toBe(0);
  expect(f.stderr, msg).not.toMatch(/verify:|bad magic|crc32c: wanted|io_u error/i);
}

describe.skipIf(pre.skip)(`scenario 4: fio randrw 4k QD32 crc32c verify (${SECONDS} s)`, () => {
  let t: TargetHandle;
  let vm: Vm;
  let portal = '';
  let dev = '';
  const t0 = Date.now();

  beforeAll(async () => {
    pre.assert();
    ({ t, vm, portal, dev } = await oneLunSession({ iqn: IQN, vmName: 's4', initiator: 'iqn.2007-10.com.example:vm-fio' }));
  });

  afterAll(async () => {
    recordTiming('scenario-4', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel, seconds: SECONDS });
    await vm?.stop();
    await t?.stop();
  });

  test('randwrite 4k QD32 over 32 MiB, every block read back and verified', async () => {
    const r = await vm.sh(fioArgs({ dev, rw: 'randwrite', size: '32M', extra: ['--offset=0'] }), { timeoutS: 600, name: 'fio randwrite+verify' });
    const f = parseFio(r.out, r.err, r.code);
    fioOk(f, 'fio randwrite');
    expect(f.writeBytes).toBe(32 * 1024 * 1024);
    // do_verify read every written block back.
    expect(f.readBytes).toBe(32 * 1024 * 1024);
    recordTiming('fio-randwrite-32M', f.runtimeMs, { writeIops: f.writeIops, verifyReadIops: f.readIops });
  });

  test(`randrw 4k QD32 for ${SECONDS} s with continuous crc32c verification`, async () => {
    const r = await vm.sh(fioArgs({ dev, rw: 'randrw', size: '128M', seconds: SECONDS, extra: ['--offset=256M', '--verify_backlog=256'] }),
      { timeoutS: SECONDS + 600, name: 'fio randrw' });
    const f = parseFio(r.out, r.err, r.code);
    fioOk(f, 'fio randrw');
    expect(f.writeBytes).toBeGreaterThan(0);
    expect(f.readBytes).toBeGreaterThan(0);
    expect(f.runtimeMs).toBeGreaterThanOrEqual(SECONDS * 1000 - 1000);
    recordTiming('fio-randrw', f.runtimeMs, { readIops: f.readIops, writeIops: f.writeIops, totalIops: f.readIops + f.writeIops });
    console.log(`[vm] fio randrw 4k QD32: ${f.readIops} read + ${f.writeIops} write IOPS (${vm.accel})`);
  });

  test('after logout and login the first 32 MiB still verify (fio --verify_only)', async () => {
    await logout(vm, IQN, portal);
    await login(vm, IQN, portal);
    dev = (await waitDevice(vm, byPath(portal, IQN), ONE_LUN_BYTES)).dev;
    const r = await vm.sh(fioArgs({ dev, rw: 'randwrite', size: '32M', extra: ['--offset=0', '--verify_only'] }), { timeoutS: 600, name: 'fio verify_only' });
    const f = parseFio(r.out, r.err, r.code);
    fioOk(f, 'fio verify_only');
    expect(f.readBytes).toBe(32 * 1024 * 1024);
    // Control: one zeroed block in the region must make the same verification fail.
    const bad = await vm.sh(`dd if=/dev/zero of=${dev} bs=4096 count=1 seek=100 oflag=direct status=none && ${fioArgs({ dev, rw: 'randwrite', size: '32M', extra: ['--offset=0', '--verify_only'] })}`,
      { timeoutS: 600 });
    expect(bad.code, describeStep('verify_only after zeroing one block', bad)).not.toBe(0);
    expect(bad.err).toMatch(/verify: bad magic header|bad header|crc32c/i);
  });
});

describe.skipIf(pre.skip || process.env.GLFS_VM_RELAY_COMPARE !== '1')('relay TCP_NODELAY/TCP_QUICKACK on vs off (GLFS_VM_RELAY_COMPARE=1)', () => {
  test('IOPS with and without TCP_NODELAY / re-armed TCP_QUICKACK', async () => {
    const results: Record<string, number> = {};
    for (const [label, env] of [['nodelay+quickack', {}], ['no-quickack', { RELAY_NO_QUICKACK: '1' }],
      ['neither', { RELAY_NO_QUICKACK: '1', RELAY_NO_NODELAY: '1' }]] as const) {
      const { t, vm, dev: d } = await oneLunSession({ iqn: IQN, vmName: `relay-${label}`, initiator: 'iqn.2007-10.com.example:vm-fio', relayEnv: env });
      try {
        const r = await vm.sh(fioArgs({ dev: d, rw: 'randrw', size: '64M', seconds: 15 }), { timeoutS: 300 });
        const f = parseFio(r.out, r.err, r.code);
        fioOk(f, label);
        results[label] = f.readIops + f.writeIops;
      } finally {
        await vm.stop();
        await t.stop();
      }
    }
    recordTiming('relay-compare', 0, results);
    console.log(`[vm] relay IOPS: ${JSON.stringify(results)}`);
    expect(results['nodelay+quickack']).toBeGreaterThan(0);
  });
});
