/**
 * Discovery, identification and capacity as libiscsi's command-line tools see them.
 * Runs against glfs-target; E2E_TARGET=tgt runs the same checks against tgtd (reference).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closeSync, openSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import {
  INITIATOR, describeRun, freePort, parseSize, prereqs, run, startGlfsTarget, startTgt, tempDir,
  type RunResult, type TargetHandle,
} from './harness.js';
import { deviceIdentification, type Designator } from './device-identification.js';

const USE_TGT = process.env.E2E_TARGET === 'tgt';
const TOOLS = ['iscsi-ls', 'iscsi-inq', 'iscsi-readcapacity16', ...(USE_TGT ? ['tgtd', 'tgtadm'] : [])];
const pre = prereqs({ tools: TOOLS, server: !USE_TGT });

const SIZES = ['1G', '64M'];
const BLOCK = 512;

/** iscsi-ls prints READ CAPACITY(10)'s last LBA × block size, divided by 1024 while > 1024. */
function lsSizeString(bytes: number, blockSize = BLOCK): string {
  let size = (bytes / blockSize - 1) * blockSize;
  const sf = [' ', 'k', 'M', 'G', 'T'];
  let pf = 0;
  for (; pf < 4 && size > 1024; pf++) size = Math.floor(size / 1024);
  return `${size}${sf[pf]}`;
}

function ok(r: RunResult): RunResult {
  expect(r.code, describeRun(r)).toBe(0);
  return r;
}

interface Identity {
  serial: string;
  naaRaw: Buffer[];
  naa: Designator[];
  lastLba: bigint;
  blockLen: number;
}

describe.skipIf(pre.skip)(`libiscsi tools against ${USE_TGT ? 'tgt' : 'glfs-target'}`, () => {
  let t: TargetHandle;
  let tmp: ReturnType<typeof tempDir> | undefined;
  const lun = (i: number) => (t.firstLun + i);
  const inq = (i: number, page: number) => run('iscsi-inq', ['-i', INITIATOR, '-e', '1', '-c', String(page), t.url(lun(i))], { timeout: 20_000 });
  const before: Identity[] = [];

  beforeAll(async () => {
    pre.assert();
    if (USE_TGT) {
      tmp = tempDir('tgt-e2e-');
      const files = SIZES.map((s, i) => {
        const f = join(tmp!.dir, `lun${i}.img`);
        const fd = openSync(f, 'w');
        ftruncateSync(fd, parseSize(s));
        closeSync(fd);
        return f;
      });
      t = await startTgt({ backingFile: files[0]!, extraBackingFiles: files.slice(1), port: await freePort() });
    } else {
      t = await startGlfsTarget({ luns: SIZES.map((size) => ({ size })) });
    }
  });

  afterAll(async () => {
    await t?.stop();
    tmp?.cleanup();
  });

  async function identity(i: number): Promise<Identity> {
    const r80 = ok(await inq(i, 0x80));
    const serial = /Unit Serial Number:\[(.*)\]/.exec(r80.stdout)?.[1];
    expect(serial, describeRun(r80)).toBeDefined();

    const r83 = ok(await inq(i, 0x83));
    // iscsi-inq prints binary designators with %s (cut at the first zero byte): keep raw bytes.
    const naaRaw: Buffer[] = [];
    const blocks = r83.stdoutBuf.toString('latin1').split(/DEVICE DESIGNATOR #\d+\n/).slice(1);
    for (const b of blocks) {
      if (/Designator Type:\(3\) NAA/.test(b)) {
        const m = /Designator:\[([\s\S]*?)\]\n/.exec(b);
        naaRaw.push(Buffer.from(m?.[1] ?? '', 'latin1'));
      }
    }

    const naa = (await deviceIdentification({ port: t.port, targetName: t.iqn, initiatorName: INITIATOR, lun: lun(i) }))
      .filter((d) => d.type === 3 && d.association === 0);

    const rc = ok(await run('iscsi-readcapacity16', ['-i', INITIATOR, t.url(lun(i))], { timeout: 20_000 }));
    const lastLba = BigInt(/RETURNED LOGICAL BLOCK ADDRESS:(\d+)/.exec(rc.stdout)?.[1] ?? '-1');
    const blockLen = Number(/LOGICAL BLOCK LENGTH IN BYTES:(\d+)/.exec(rc.stdout)?.[1] ?? NaN);
    return { serial: serial!, naaRaw, naa, lastLba, blockLen };
  }

  test('iscsi-ls discovers the target on its portal and lists each LUN with its size', async () => {
    const r = ok(await run('iscsi-ls', ['-i', INITIATOR, '-s', `iscsi://${t.portal}`], { timeout: 30_000 }));
    const targets = [...r.stdout.matchAll(/^Target:(\S+) Portal:(\S+)$/gm)].map((m) => ({ iqn: m[1], portal: m[2] }));
    expect(targets, describeRun(r)).toHaveLength(1);
    expect(targets[0]!.iqn).toBe(t.iqn);
    // SendTargets must advertise an address the initiator can reach: ours, with a ",tpgt" suffix.
    expect(targets[0]!.portal).toMatch(new RegExp(`^127\\.0\\.0\\.1:${t.port},\\d+$`));

    const luns = new Map<number, string>();
    for (const m of r.stdout.matchAll(/^Lun:(\d+)\s+Type:(\S+)(?: \(Size:(\S+)\))?/gm)) luns.set(Number(m[1]), `${m[2]} ${m[3] ?? ''}`.trim());
    SIZES.forEach((s, i) => {
      expect(luns.get(lun(i)), describeRun(r)).toBe(`DIRECT_ACCESS ${lsSizeString(parseSize(s))}`);
    });
    if (!USE_TGT) {
      expect([...luns.keys()].sort()).toEqual([0, 1]); // no phantom LUNs
      expect(r.stdout).toMatch(/^Lun:0 /m);
    }
  });

  test('VPD 0x80 unit serial number: present, printable and distinct per LUN', async () => {
    for (let i = 0; i < SIZES.length; i++) before[i] = await identity(i);
    for (const id of before) {
      expect(id.serial.trim().length).toBeGreaterThan(0);
      expect(id.serial).toMatch(/^[\x20-\x7e]+$/);
    }
    expect(before[0]!.serial.trim()).not.toBe(before[1]!.serial.trim());
  });

  test('VPD 0x83 carries a logical-unit NAA designator, distinct per LUN', () => {
    for (const id of before) {
      // iscsi-inq shows it ...
      expect(id.naaRaw.length).toBeGreaterThan(0);
      // ... and the full bytes (via the mini initiator) are a well-formed NAA designator.
      expect(id.naa.length).toBeGreaterThan(0);
      const d = id.naa[0]!;
      expect(d.codeSet).toBe(1); // binary
      const naaType = d.value[0]! >> 4;
      if (USE_TGT) {
        expect([2, 3, 5, 6]).toContain(naaType);
      } else {
        // glfs-target: NAA IEEE Registered Extended, 16 bytes, first nibble 6.
        expect(d.value.length).toBe(16);
        expect(naaType).toBe(6);
        // iscsi-inq's %s rendering is a prefix of the real designator.
        expect(d.value.subarray(0, id.naaRaw[0]!.length).equals(id.naaRaw[0]!)).toBe(true);
      }
    }
    expect(before[0]!.naa[0]!.value.equals(before[1]!.naa[0]!.value)).toBe(false);
  });

  test('READ CAPACITY(16) reports the configured size with 512-byte blocks', () => {
    SIZES.forEach((s, i) => {
      expect(before[i]!.blockLen).toBe(BLOCK);
      expect(before[i]!.lastLba).toBe(BigInt(parseSize(s) / BLOCK - 1));
    });
  });

  test('serial, NAA designator and capacity are unchanged across a target restart', async () => {
    await t.restart();
    for (let i = 0; i < SIZES.length; i++) {
      const after = await identity(i);
      expect(after.serial).toBe(before[i]!.serial);
      expect(after.naaRaw.map((b) => b.toString('hex'))).toEqual(before[i]!.naaRaw.map((b) => b.toString('hex')));
      expect(after.naa.map((d) => d.value.toString('hex'))).toEqual(before[i]!.naa.map((d) => d.value.toString('hex')));
      expect(after.lastLba).toBe(before[i]!.lastLba);
      expect(after.blockLen).toBe(before[i]!.blockLen);
    }
  });
});
