/**
 * Data integrity through QEMU's iSCSI block driver (libiscsi): image copy + compare, across a
 * target restart, qemu-img bench writes verified by qemu-io, and cross-session visibility.
 * Runs against glfs-target; E2E_TARGET=tgt runs the same checks against tgtd (reference).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closeSync, copyFileSync, ftruncateSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  QemuIoSession, describeRun, freePort, prereqs, processCpuMicros, qemuFileImageOpts, qemuIoOk, qemuIscsiImageOpts, run,
  startGlfsTarget, startTgt, tempDir, type RunResult, type TargetHandle,
} from './harness.js';

const USE_TGT = process.env.E2E_TARGET === 'tgt';
const TOOLS = ['qemu-img', 'qemu-io', ...(USE_TGT ? ['tgtd', 'tgtadm'] : [])];
const pre = prereqs({ tools: TOOLS, server: !USE_TGT });

const MiB = 1024 * 1024;
const LUN_SIZE = 1024 * MiB;
const IMG_SIZE = 64 * MiB;

function ok(r: RunResult): RunResult {
  expect(r.code, describeRun(r)).toBe(0);
  return r;
}

describe.skipIf(pre.skip)(`qemu-img / qemu-io against ${USE_TGT ? 'tgt' : 'glfs-target'}`, () => {
  let t: TargetHandle;
  let tmp: ReturnType<typeof tempDir>;
  let image: string;

  beforeAll(async () => {
    pre.assert();
    tmp = tempDir('qemu-e2e-');
    image = join(tmp.dir, 'random.img');
    // 64 MiB of random data, written in 4 MiB chunks.
    const fd = openSync(image, 'w');
    for (let off = 0; off < IMG_SIZE; off += 4 * MiB) writeSync(fd, randomBytes(4 * MiB));
    closeSync(fd);
    if (USE_TGT) {
      const lun = join(tmp.dir, 'tgt-lun.img');
      const lfd = openSync(lun, 'w');
      ftruncateSync(lfd, LUN_SIZE);
      closeSync(lfd);
      t = await startTgt({ backingFile: lun, port: await freePort() });
    } else {
      t = await startGlfsTarget({ luns: [{ size: '1G' }] });
    }
  });

  afterAll(async () => {
    await t?.stop();
    tmp?.cleanup();
  });

  /** Compares the local image with the first 64 MiB of the LUN (raw driver window via --image-opts). */
  const compare = (file: string) =>
    run('qemu-img', ['compare', '--image-opts', qemuFileImageOpts(file), qemuIscsiImageOpts(t, { size: IMG_SIZE })], { timeout: 60_000 });

  const qemuIo = (cmd: string) => run('qemu-io', ['-f', 'raw', '-t', 'none', '-c', cmd, t.url()], { timeout: 30_000 });

  test('qemu-img convert writes 64 MiB of random data that qemu-img compare reads back identical', async () => {
    ok(await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', image, t.url()], { timeout: 60_000 }));
    const c = ok(await compare(image));
    expect(c.stdout).toContain('Images are identical.');
    expect(c.stdout).not.toContain('size mismatch');

    // Control: compare must notice a one-byte difference, otherwise it proves nothing.
    const altered = join(tmp.dir, 'altered.img');
    copyFileSync(image, altered);
    const pos = 40 * MiB + 12345;
    const orig = Buffer.alloc(1);
    const ofd = openSync(image, 'r');
    readSync(ofd, orig, 0, 1, pos);
    closeSync(ofd);
    const afd = openSync(altered, 'r+');
    writeSync(afd, Buffer.from([orig[0]! ^ 0xff]), 0, 1, pos);
    closeSync(afd);
    const bad = await compare(altered);
    expect(bad.code, describeRun(bad)).toBe(1);
    expect(bad.stdout).toContain(`Content mismatch at offset ${pos - (pos % 512)}!`);

    // The area behind the image is still zero (no stray writes past the end).
    const z = ok(await qemuIo(`read -P 0 ${IMG_SIZE} ${MiB}`));
    expect(qemuIoOk(z.stdout, 'read', MiB, IMG_SIZE), describeRun(z)).toBe(true);
  });

  test('the data is still identical after the target restarts', async () => {
    await t.restart();
    const c = ok(await compare(image));
    expect(c.stdout).toContain('Images are identical.');
  });

  test('16 parallel out-of-order writers of mixed sizes (data runs between zero runs) read back identical', async () => {
    // Runs of random data from 512 B to 1.5 MiB separated by zero runs: qemu-img convert -W -m 16
    // issues WRITEs of many sizes (immediate data, unsolicited and solicited Data-Out, several
    // buffer-pool size classes) plus zero writes, up to 16 at a time and out of order.
    const mixed = join(tmp.dir, 'mixed.img');
    const buf = Buffer.alloc(IMG_SIZE);
    for (let off = 0, i = 0; off < IMG_SIZE; i++) {
      const run = 512 * (1 + ((i * 7919) % 3072));
      if (i % 2 === 0) randomBytes(Math.min(run, IMG_SIZE - off)).copy(buf, off);
      off += run;
    }
    const fd = openSync(mixed, 'w');
    writeSync(fd, buf);
    closeSync(fd);
    ok(await run('qemu-img', ['convert', '-n', '-W', '-m', '16', '-f', 'raw', '-O', 'raw', mixed, t.url()], { timeout: 120_000 }));
    expect(ok(await compare(mixed)).stdout).toContain('Images are identical.');
    // Put the first image back for the tests that follow.
    ok(await run('qemu-img', ['convert', '-n', '-W', '-m', '16', '-f', 'raw', '-O', 'raw', image, t.url()], { timeout: 120_000 }));
    expect(ok(await compare(image)).stdout).toContain('Images are identical.');
  });

  test('qemu-img bench writes (QD32, 4 KiB) read back by qemu-io with the same pattern', async () => {
    // bench writes COUNT requests of SIZE bytes from --offset, advancing by --step (= SIZE).
    const count = 2000;
    const size = 4096;
    const offset = 256 * MiB;
    const b = ok(await run('qemu-img', ['bench', '-w', '-d', '32', '-c', String(count), '-s', String(size), '-o', String(offset),
      '--pattern=0xa5', '-t', 'none', '-f', 'raw', t.url()], { timeout: 60_000 }));
    expect(b.stdout).toContain(`Sending ${count} write requests, ${size} bytes each, 32 in parallel (starting at offset ${offset}, step size ${size})`);
    expect(b.stdout).toMatch(/Run completed in [\d.]+ seconds/);

    const len = count * size;
    const r = ok(await qemuIo(`read -P 0xa5 ${offset} ${len}`));
    expect(qemuIoOk(r.stdout, 'read', len, offset), describeRun(r)).toBe(true);
    // Neighbours untouched: the sector before and the 64 KiB after are still zero.
    const pre0 = ok(await qemuIo(`read -P 0 ${offset - 512} 512`));
    expect(qemuIoOk(pre0.stdout, 'read', 512, offset - 512), describeRun(pre0)).toBe(true);
    const post0 = ok(await qemuIo(`read -P 0 ${offset + len} 65536`));
    expect(qemuIoOk(post0.stdout, 'read', 65536, offset + len), describeRun(post0)).toBe(true);
    // The image written earlier is intact.
    expect(ok(await compare(image)).stdout).toContain('Images are identical.');
  });

  test('QD1 writes land, and once the initiator stops the server sleeps (busy-polling ends with the traffic)', async () => {
    const count = 3000;
    const offset = 320 * MiB;
    ok(await run('qemu-img', ['bench', '-w', '-d', '1', '-c', String(count), '-s', '4096', '-o', String(offset),
      '--pattern=0x5c', '-t', 'none', '-f', 'raw', t.url()], { timeout: 60_000 }));
    const r = ok(await qemuIo(`read -P 0x5c ${offset} ${count * 4096}`));
    expect(qemuIoOk(r.stdout, 'read', count * 4096, offset), describeRun(r)).toBe(true);
    // A server left polling would use a whole core; sleeping, it uses next to nothing.
    const pid = t.pid();
    expect(pid).toBeDefined();
    await new Promise((res) => setTimeout(res, 300));
    const before = processCpuMicros(pid!);
    await new Promise((res) => setTimeout(res, 1000));
    expect(processCpuMicros(pid!) - before, 'CPU microseconds used in 1 s with no initiator').toBeLessThan(150_000);
  });

  test('writes from one session are visible to another session that stays logged in', async () => {
    const off1 = 512 * MiB;
    const off2 = 600 * MiB + 4096;
    const len = 1 * MiB;
    const a = await QemuIoSession.open(t.url());
    try {
      let out = await a.cmd(`read -P 0 ${off1} ${len}`);
      expect(qemuIoOk(out, 'read', len, off1), out).toBe(true);

      // Another session writes; the open session must see the new data, not a stale copy.
      const w = ok(await qemuIo(`write -P 0x3c ${off1} ${len}`));
      expect(qemuIoOk(w.stdout, 'wrote', len, off1), describeRun(w)).toBe(true);
      out = await a.cmd(`read -P 0x3c ${off1} ${len}`);
      expect(qemuIoOk(out, 'read', len, off1), out).toBe(true);

      // The open session writes (unaligned to 1 MiB, crossing a 64 KiB boundary); a new session verifies.
      out = await a.cmd(`write -P 0x5a ${off2} ${len}`);
      expect(qemuIoOk(out, 'wrote', len, off2), out).toBe(true);
      out = await a.cmd('flush');
      expect(out).not.toMatch(/error|failed/i);
      const r = ok(await qemuIo(`read -P 0x5a ${off2} ${len}`));
      expect(qemuIoOk(r.stdout, 'read', len, off2), describeRun(r)).toBe(true);
    } finally {
      await a.close();
    }
  });

  test('CRC32C header digest: write and read back through a digest-enabled session', async () => {
    const off = 700 * MiB;
    const len = 2 * MiB;
    const opts = qemuIscsiImageOpts(t, {}) + ',file.header-digest=crc32c';
    const s = await QemuIoSession.open(opts, { imageOpts: true });
    try {
      let out = await s.cmd(`write -P 0x77 ${off} ${len}`);
      expect(qemuIoOk(out, 'wrote', len, off), out).toBe(true);
      out = await s.cmd(`read -P 0x77 ${off} ${len}`);
      expect(qemuIoOk(out, 'read', len, off), out).toBe(true);
    } finally {
      await s.close();
    }
    const r = ok(await qemuIo(`read -P 0x77 ${off} ${len}`));
    expect(qemuIoOk(r.stdout, 'read', len, off), describeRun(r)).toBe(true);
  });

  test('the backing file holds exactly what the initiators wrote', async () => {
    // Stop the target (glfs-target: SIGTERM, which must be a clean exit) and read the file directly.
    if (USE_TGT) await t.kill('SIGKILL');
    else {
      await t.kill('SIGTERM');
      expect(t.lastExit(), t.logs()).toEqual({ code: 0, signal: null });
    }
    expect(statSync(t.lunPath(0)).size).toBe(LUN_SIZE);
    const fd = openSync(t.lunPath(0), 'r');
    const at = (off: number, len: number) => {
      const b = Buffer.alloc(len);
      expect(readSync(fd, b, 0, len, off)).toBe(len);
      return b;
    };
    try {
      expect(at(0, IMG_SIZE).equals(readFileSync(image))).toBe(true);
      expect(at(256 * MiB, 2000 * 4096).every((x) => x === 0xa5)).toBe(true);
      expect(at(512 * MiB, MiB).every((x) => x === 0x3c)).toBe(true);
      expect(at(600 * MiB + 4096, MiB).every((x) => x === 0x5a)).toBe(true);
      expect(at(700 * MiB, 2 * MiB).every((x) => x === 0x77)).toBe(true);
      expect(at(600 * MiB, 4096).every((x) => x === 0)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });
});
