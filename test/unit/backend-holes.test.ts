import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileBackend } from '../../src/backend/file-backend.js';
import { MemoryBackend } from '../../src/backend/memory-backend.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let dir: string;
const open: FileBackend[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glfs-holes-'));
});
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function backend(size = 4 * MiB): Promise<FileBackend> {
  const b = await FileBackend.open({ path: path.join(dir, 'lun.img'), sizeBytes: size, create: true, readOnly: false, blockSize: 512 });
  open.push(b);
  return b;
}

/** Walk mapStatus over the whole backend: [offset, length, mapped][]. */
async function extents(b: FileBackend | MemoryBackend): Promise<[number, number, boolean][]> {
  const out: [number, number, boolean][] = [];
  for (let o = 0; o < b.sizeBytes; ) {
    const e = await b.mapStatus(o, b.sizeBytes - o);
    out.push([o, e.length, e.mapped]);
    o += e.length;
  }
  return out;
}

describe('FileBackend holes (fallocate PUNCH_HOLE, SEEK_DATA / SEEK_HOLE)', () => {
  it('reports a new sparse file as one hole and written ranges as data', async () => {
    const b = await backend();
    expect(b.allocationUnit).toBeGreaterThanOrEqual(512);
    expect(await extents(b)).toEqual([[0, 4 * MiB, false]]);
    await b.write(Buffer.alloc(64 * KiB, 7), MiB, false);
    expect(await extents(b)).toEqual([
      [0, MiB, false],
      [MiB, 64 * KiB, true],
      [MiB + 64 * KiB, 3 * MiB - 64 * KiB, false],
    ]);
    // mapStatus never reports past the requested length.
    expect(await b.mapStatus(MiB, 4 * KiB)).toEqual({ mapped: true, length: 4 * KiB });
  });

  it('punchHole deallocates whole blocks, zeroes partial ones, keeps the size', async () => {
    const b = await backend();
    const p = path.join(dir, 'lun.img');
    await b.write(Buffer.alloc(MiB, 0xaa), 0, true);
    const before = fs.statSync(p).blocks;
    await b.punchHole(100, 256 * KiB, true);
    const st = fs.statSync(p);
    expect(st.size).toBe(4 * MiB);
    expect(st.blocks).toBeLessThan(before);
    const buf = Buffer.alloc(MiB);
    await b.read(buf, 0);
    expect(buf.subarray(0, 100).every((x) => x === 0xaa)).toBe(true);
    expect(buf.subarray(100, 100 + 256 * KiB).every((x) => x === 0)).toBe(true);
    expect(buf.subarray(100 + 256 * KiB).every((x) => x === 0xaa)).toBe(true);
    const holes = (await extents(b)).filter(([, , mapped]) => !mapped);
    expect(holes.length).toBeGreaterThanOrEqual(2); // the punched range and the untouched tail
    expect(holes[0]![0]).toBeGreaterThanOrEqual(100);
    expect(holes[0]![0] + holes[0]![1]).toBeLessThanOrEqual(100 + 256 * KiB);
  });

  it('rejects use after close', async () => {
    const b = await backend();
    await b.close();
    await expect(b.punchHole(0, 512, false)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(b.mapStatus(0, 512)).rejects.toMatchObject({ code: 'EBADF' });
  });
});

describe('FileBackend sidecars', () => {
  it('writes <lun>.<name> atomically, reads it back, removes it', async () => {
    const b = await backend();
    const p = path.join(dir, 'lun.img.pr.json');
    expect(await b.readSidecar('pr.json')).toBeUndefined();
    await b.writeSidecar('pr.json', Buffer.from('{"a":1}'));
    expect(fs.readFileSync(p, 'utf8')).toBe('{"a":1}');
    await b.writeSidecar('pr.json', Buffer.from('{"a":2}'));
    expect((await b.readSidecar('pr.json'))!.toString()).toBe('{"a":2}');
    // No temporary files are left behind.
    expect(fs.readdirSync(dir).sort()).toEqual(['lun.img', 'lun.img.pr.json']);
    await b.writeSidecar('pr.json', undefined);
    expect(fs.existsSync(p)).toBe(false);
    await b.writeSidecar('pr.json', undefined); // removing twice is fine
  });

  it('reports a failure to write and leaves the previous contents', async () => {
    const b = await backend();
    await b.writeSidecar('pr.json', Buffer.from('old'));
    fs.mkdirSync(path.join(dir, 'lun.img.x.json'));
    await expect(b.writeSidecar('x.json', Buffer.from('new'))).rejects.toBeDefined();
    expect((await b.readSidecar('pr.json'))!.toString()).toBe('old');
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('MemoryBackend allocation tracking', () => {
  it('tracks allocation per unit like a sparse file', async () => {
    const m = new MemoryBackend(64 * KiB, { allocationUnit: 4 * KiB });
    expect(m.allocatedBytes()).toBe(0);
    await m.write(Buffer.alloc(10, 1), 4 * KiB - 5, false);
    expect(m.allocatedBytes()).toBe(8 * KiB);
    expect(await extents(m)).toEqual([
      [0, 8 * KiB, true],
      [8 * KiB, 56 * KiB, false],
    ]);
    await m.punchHole(0, 64 * KiB, false);
    expect(m.allocatedBytes()).toBe(0);
    expect(m.data.every((x) => x === 0)).toBe(true);
  });

  it('a Buffer-backed backend starts fully allocated; partial punches zero without releasing', async () => {
    const m = new MemoryBackend(Buffer.alloc(16 * KiB, 3), { allocationUnit: 4 * KiB });
    expect(m.allocatedBytes()).toBe(16 * KiB);
    await m.punchHole(KiB, 2 * KiB, false);
    expect(m.allocatedBytes()).toBe(16 * KiB);
    expect(m.data[KiB]).toBe(0);
    await m.punchHole(2 * KiB, 8 * KiB, false);
    expect(m.allocatedBytes()).toBe(12 * KiB);
    expect(await extents(m)).toEqual([
      [0, 4 * KiB, true],
      [4 * KiB, 4 * KiB, false],
      [8 * KiB, 8 * KiB, true],
    ]);
  });

  it('injects punch and sidecar failures', async () => {
    const m = new MemoryBackend(8 * KiB);
    m.failNext('punch', 'EIO');
    await expect(m.punchHole(0, 512, false)).rejects.toMatchObject({ code: 'EIO' });
    m.failNext('sidecar', 'ENOSPC');
    await expect(m.writeSidecar('x', Buffer.from('1'))).rejects.toMatchObject({ code: 'ENOSPC' });
    await m.writeSidecar('x', Buffer.from('1'));
    expect((await m.readSidecar('x'))!.toString()).toBe('1');
  });
});
