import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { FileBackend } from '../../src/backend/file-backend.js';
import { cachedReadsAvailable } from '../../src/backend/native-io.js';

let dir: string;
const open: FileBackend[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glfs-backend-'));
});
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function openBackend(opts: Parameters<typeof FileBackend.open>[0]): Promise<FileBackend> {
  const b = await FileBackend.open(opts);
  open.push(b);
  return b;
}

const MiB = 1024 * 1024;

describe('FileBackend', () => {
  it('creates a missing file sparse at the configured size', async () => {
    const p = path.join(dir, 'lun0.img');
    const b = await openBackend({ path: p, sizeBytes: 64 * MiB, create: true, readOnly: false, blockSize: 512 });
    expect(b.created).toBe(true);
    expect(b.sizeBytes).toBe(64 * MiB);
    const st = fs.statSync(p);
    expect(st.size).toBe(64 * MiB);
    expect(st.blocks * 512).toBeLessThan(MiB); // sparse
    expect(b.description).toBe(p);
  });

  it('refuses a missing file unless asked to create it (an unmounted volume is no blank disk), and a missing read-only file', async () => {
    const p = path.join(dir, 'missing.img');
    await expect(FileBackend.open({ path: p, readOnly: false, blockSize: 512 })).rejects.toThrow(/does not exist/);
    await expect(FileBackend.open({ path: p, sizeBytes: MiB, readOnly: false, blockSize: 512 })).rejects.toThrow(/does not exist; set "create": true/);
    await expect(FileBackend.open({ path: p, sizeBytes: MiB, readOnly: true, blockSize: 512 })).rejects.toThrow(
      /does not exist/,
    );
    expect(fs.existsSync(p)).toBe(false);
  });

  it('grows a smaller file, never shrinks a bigger one, and rounds capacity down to a block', async () => {
    const p = path.join(dir, 'grow.img');
    fs.writeFileSync(p, Buffer.alloc(4096, 0x11));
    const b = await openBackend({ path: p, sizeBytes: MiB, create: true, readOnly: false, blockSize: 4096 });
    expect(b.grewFrom).toBe(4096);
    expect(b.sizeBytes).toBe(MiB);
    const head = Buffer.alloc(4096);
    await b.read(head, 0);
    expect(head.every((x) => x === 0x11)).toBe(true);
    await b.close();

    const q = path.join(dir, 'big.img');
    fs.writeFileSync(q, Buffer.alloc(3 * 4096 + 100));
    const c = await openBackend({ path: q, sizeBytes: 4096, create: true, readOnly: false, blockSize: 4096 });
    expect(c.grewFrom).toBeUndefined();
    expect(c.sizeBytes).toBe(3 * 4096);
    expect(fs.statSync(q).size).toBe(3 * 4096 + 100);
  });

  it('refuses a file smaller than one block', async () => {
    const p = path.join(dir, 'tiny.img');
    fs.writeFileSync(p, Buffer.alloc(100));
    await expect(FileBackend.open({ path: p, readOnly: false, blockSize: 512 })).rejects.toThrow(/smaller than one/);
  });

  it('takes an exclusive lock: a second open fails with ELOCKED until the first closes', async () => {
    const p = path.join(dir, 'locked.img');
    const a = await openBackend({ path: p, sizeBytes: MiB, create: true, readOnly: false, blockSize: 512 });
    const err = await FileBackend.open({ path: p, readOnly: true, blockSize: 512 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as NodeJS.ErrnoException).code).toBe('ELOCKED');
    expect((err as Error).message).toBe(`${p} is in use by another server (exclusive lock held)`);
    await a.close();
    await a.close(); // idempotent
    const b = await openBackend({ path: p, readOnly: true, blockSize: 512 });
    expect(b.readOnly).toBe(true);
  });

  it('round-trips writes and reads, durable or not, and flushes', async () => {
    const p = path.join(dir, 'rw.img');
    const b = await openBackend({ path: p, sizeBytes: 8 * MiB, create: true, readOnly: false, blockSize: 512 });
    const data = Buffer.alloc(3 * MiB);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    await b.write(data, 4 * MiB + 512, false);
    await b.write(data.subarray(0, 512), 0, true);
    await b.flush();
    const back = Buffer.allocUnsafe(data.length);
    await b.read(back, 4 * MiB + 512);
    expect(back.equals(data)).toBe(true);
    const zero = Buffer.allocUnsafe(512);
    await b.read(zero, 2 * MiB);
    expect(zero.every((x) => x === 0)).toBe(true);
    const fd = fs.openSync(p, 'r');
    const check = Buffer.alloc(512);
    fs.readSync(fd, check, 0, 512, 0);
    fs.closeSync(fd);
    expect(check.equals(data.subarray(0, 512))).toBe(true);
  });

  it('writes a list of buffers back to back (a Data-Out that arrived in pieces), skipping empty ones', async () => {
    const p = path.join(dir, 'writev.img');
    const b = await openBackend({ path: p, sizeBytes: 4 * MiB, create: true, readOnly: false, blockSize: 512 });
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    const pieces = [data.subarray(0, 1), Buffer.alloc(0), data.subarray(1, 65_536), data.subarray(65_536, 200_001), data.subarray(200_001)];
    await b.write(pieces, MiB, true);
    await b.write([], 0, true);
    const fd = fs.openSync(p, 'r');
    const back = Buffer.alloc(data.length + 2);
    fs.readSync(fd, back, 0, back.length, MiB - 1);
    fs.closeSync(fd);
    expect(back[0]).toBe(0);
    expect(back.subarray(1, 1 + data.length).equals(data)).toBe(true);
    expect(back[back.length - 1]).toBe(0);
  });

  it('keeps every byte right when many adjacent reads and writes are in flight at once (merged requests)', async () => {
    const p = path.join(dir, 'merge.img');
    const b = await openBackend({ path: p, sizeBytes: 8 * MiB, create: true, readOnly: false, blockSize: 512 });
    const chunks = Array.from({ length: 300 }, (_, i) => Buffer.alloc(4096 + (i % 3) * 512, (i * 37 + 1) & 0xff));
    let off = 4096;
    const offsets = chunks.map((c) => { const o = off; off += c.length; return o; });
    await Promise.all(chunks.map((c, i) => b.write(c, offsets[i]!, i === 150)));
    const back = chunks.map((c) => Buffer.alloc(c.length));
    await Promise.all(back.map((buf, i) => b.read(buf, offsets[i]!)));
    back.forEach((buf, i) => expect(buf.equals(chunks[i]!)).toBe(true));
    const fd = fs.openSync(p, 'r');
    const whole = Buffer.alloc(off - 4096);
    fs.readSync(fd, whole, 0, whole.length, 4096);
    fs.closeSync(fd);
    expect(whole.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('zero-fills reads past the end of a file that shrank underneath it', async () => {
    const p = path.join(dir, 'shrink.img');
    fs.writeFileSync(p, Buffer.alloc(8192, 0x22));
    const b = await openBackend({ path: p, readOnly: false, blockSize: 512 });
    fs.truncateSync(p, 4096);
    const buf = Buffer.allocUnsafe(8192);
    await b.read(buf, 0);
    expect(buf.subarray(0, 4096).every((x) => x === 0x22)).toBe(true);
    expect(buf.subarray(4096).every((x) => x === 0)).toBe(true);
  });

  it('a read-only backend refuses writes from the OS and rejects I/O after close', async () => {
    const p = path.join(dir, 'ro.img');
    fs.writeFileSync(p, Buffer.alloc(4096));
    const b = await openBackend({ path: p, readOnly: true, blockSize: 512 });
    await expect(b.write(Buffer.alloc(512), 0, false)).rejects.toMatchObject({ code: 'EBADF' });
    await b.flush(); // fdatasync on a read-only fd is fine
    await b.close();
    await expect(b.read(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'EBADF' });
  });

  it('serves reads of cached data while every thread-pool thread is stuck; uncached parts wait for the pool', async () => {
    expect(cachedReadsAvailable, 'the native addon (build/Release/file_io.node) is built by npm ci').toBe(true);
    const p = path.join(dir, 'cached.img');
    const b = await openBackend({ path: p, sizeBytes: 8 * MiB, create: true, readOnly: false, blockSize: 512 });
    const data = Buffer.alloc(64 * 1024, 0x5a);
    await b.write(data, 0, false); // in the page cache now
    // The next 64 KiB written with O_DIRECT: on the disk, and in no page cache.
    const src = path.join(dir, 'src.bin');
    fs.writeFileSync(src, Buffer.alloc(data.length, 0x33));
    execFileSync('dd', [`if=${src}`, `of=${p}`, `bs=${data.length}`, 'seek=1', 'count=1', 'oflag=direct', 'conv=notrunc'], { stdio: 'ignore' });
    // Occupy every pool thread: opening a FIFO for reading blocks until a writer comes.
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const fifos = Array.from({ length: threads }, (_, i) => path.join(dir, `fifo${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const stuck = fifos.map((f) => fs.promises.open(f, 'r'));
    try {
      await new Promise((r) => setTimeout(r, 50));
      const cached = Buffer.alloc(data.length);
      const cachedRead = b.read(cached, 0).then(() => 'done');
      expect(await Promise.race([cachedRead, new Promise((r) => setTimeout(() => r('waiting'), 1000))])).toBe('done');
      expect(cached.equals(data)).toBe(true);
      // Half cached, half not: the cached half is copied, the other waits for a pool thread.
      const mixed = Buffer.alloc(data.length, 0xff);
      let mixedDone = false;
      const mixedRead = b.read(mixed, data.length / 2).then(() => { mixedDone = true; });
      await new Promise((r) => setTimeout(r, 200));
      expect(mixedDone).toBe(false);
      for (const f of fifos) fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      await mixedRead;
      expect(mixed.subarray(0, data.length / 2).every((x) => x === 0x5a)).toBe(true);
      expect(mixed.subarray(data.length / 2).every((x) => x === 0x33)).toBe(true);
    } finally {
      for (const f of fifos) { try { fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)); } catch { /* opened already */ } }
      for (const h of await Promise.all(stuck)) await h.close();
    }
  });

  it('with O_DIRECT, a write larger than one FUSE request goes whole from page-aligned memory (ext4 refuses unaligned memory)', async () => {
    const p = path.join(dir, 'direct.img');
    const b = await openBackend({ path: p, sizeBytes: 8 * MiB, create: true, readOnly: false, blockSize: 512, directIo: true });
    expect(b.directIo).toBe(true);
    // A Data-Out that arrived in pieces, none of them on a page: 1 MiB + 512 at a sector, not a page.
    const pieces = Array.from({ length: 9 }, (_, i) => Buffer.alloc(i === 8 ? 512 : 128 * 1024, 0x40 + i));
    await b.write(pieces, 4096 + 512, true);
    const back = Buffer.alloc(MiB + 512);
    const fd = fs.openSync(p, 'r');
    fs.readSync(fd, back, 0, back.length, 4096 + 512);
    fs.closeSync(fd);
    expect(back.equals(Buffer.concat(pieces))).toBe(true);
  });
});
