/**
 * Scenario 6: the server is SIGKILLed while fio writes with fsync (every 32 writes); it is
 * restarted with the same config, the kernel initiator reconnects (session recovery, no I/O
 * error), fio finishes and reads back every block it wrote (crc32c verify), and the backing file
 * on the host holds exactly what the guest reads.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { sleep, type TargetHandle } from '../e2e/harness.js';
import { describeStep, recordTiming, vmPrereqs, type Vm } from './vm.js';
import { oneLunSession, parseFio } from './scenarios.js';

const pre = vmPrereqs();
const IQN = 'iqn.2016-06.org.gluster:vm-crash';
const MiB = 1024 * 1024;
const REGION_MIB = 8;

describe.skipIf(pre.skip)('scenario 6: SIGKILL the server during fsync-ed fio writes, restart, everything acknowledged reads back', () => {
  let t: TargetHandle;
  let vm: Vm;
  let dev = '';
  const t0 = Date.now();

  beforeAll(async () => {
    pre.assert();
    // Defaults except a shorter NOP-Out interval so a dead connection is noticed quickly.
    ({ t, vm, dev } = await oneLunSession({
      iqn: IQN, vmName: 's6', initiator: 'iqn.2007-10.com.example:vm-crash',
      iscsid: { 'node.conn[0].timeo.noop_out_interval': 2, 'node.conn[0].timeo.noop_out_timeout': 5 },
    }));
  });

  afterAll(async () => {
    recordTiming('scenario-6', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel });
    await vm?.stop();
    await t?.stop();
  });

  test('fio survives a SIGKILL + restart of the target and verifies every block', async () => {
    const sd = dev.slice(5);
    const fio = ['fio', '--name=crash', `--filename=${dev}`, '--direct=1', '--ioengine=libaio', '--rw=randwrite', '--bs=4k',
      '--iodepth=8', `--size=${REGION_MIB}M`, '--offset=0', '--fsync=32', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1',
      '--randseed=66', '--output-format=json', '--output=/run/fio6.json'].join(' ');
    const start = await vm.sh(`dmesg -C; setsid ${fio} >/run/fio6.log 2>&1 </dev/null & echo $!`, { name: 'start fio' });
    expect(start.code, describeStep('start fio', start)).toBe(0);

    // Wait until a good number of writes completed (field 5 of the disk's stat), then kill.
    const writes = async () => Number((await vm.sh(`awk '{print $5}' /sys/block/${sd}/stat; pidof fio >/dev/null || echo gone`)).out.trim().split('\n')[0]);
    let before = 0;
    for (let i = 0; i < 120 && before < 300; i++) {
      await sleep(500);
      before = await writes();
    }
    expect(before).toBeGreaterThanOrEqual(300);
    const running = await vm.sh('pidof fio');
    expect(running.code, 'fio must still be running when the target is killed').toBe(0);

    const killedAt = Date.now();
    await t.kill('SIGKILL');
    expect(t.lastExit()?.signal).toBe('SIGKILL');
    await sleep(1000);
    await t.restart();
    recordTiming('s6-target-down', Date.now() - killedAt);

    // fio resumes after the initiator reconnects; wait for it to finish (writes + verify).
    const done = await vm.sh('for i in $(seq 1 1200); do pidof fio >/dev/null || exit 0; sleep 0.5; done; exit 1', { timeoutS: 700, name: 'wait fio' });
    expect(done.code, describeStep('fio did not finish', done)).toBe(0);
    const out = await vm.sh('cat /run/fio6.json; cat /run/fio6.log >&2');
    const f = parseFio(out.out, out.err, 0);
    if (f.error !== 0) {
      const k = await vm.sh('dmesg | tail -40; iscsiadm -m session -P 1 2>&1 | tail -12; tail -30 /run/iscsid.log 2>/dev/null');
      expect(f.error, `${out.err}\n--- kernel ---\n${k.out}\n--- target ---\n${t.logs().split('\n').slice(-30).join('\n')}\n--- relay ---\n${vm.relayLog().split('\n').slice(-30).join('\n')}`).toBe(0);
    }
    expect(f.writeBytes).toBe(REGION_MIB * MiB);
    expect(f.readBytes, 'the verify phase read every written block').toBe(REGION_MIB * MiB);
    expect(out.err).not.toMatch(/verify|bad magic|crc32c: wanted|io_u error/i);

    // The kernel saw the connection drop and recovered the session: no I/O error, no timeout.
    const k = await vm.sh(`dmesg; echo ---; iscsiadm -m session -P 1 | grep -E 'iSCSI Session State|Internal iscsid Session State'`);
    const [kmsg, state] = k.out.split('---');
    expect(kmsg).toMatch(/detected conn error/);
    expect(kmsg).not.toMatch(/session recovery timed out|I\/O error|Buffer I\/O error/);
    expect(state).toMatch(/iSCSI Session State: LOGGED_IN/);
    expect(state).toMatch(/Internal iscsid Session State: NO CHANGE/);
  });

  test('the backing file holds exactly what the guest reads', async () => {
    const g = await vm.sh(`dd if=${dev} bs=1M count=${REGION_MIB} iflag=direct status=none | sha256sum`);
    expect(g.code, describeStep('guest sha256', g)).toBe(0);
    const h = createHash('sha256');
    const fd = openSync(t.lunPath(0), 'r');
    const buf = Buffer.alloc(MiB);
    try {
      for (let i = 0; i < REGION_MIB; i++) {
        expect(readSync(fd, buf, 0, MiB, i * MiB)).toBe(MiB);
        h.update(buf);
      }
    } finally {
      closeSync(fd);
    }
    expect(g.out.split(/\s+/)[0]).toBe(h.digest('hex'));
  });
});
