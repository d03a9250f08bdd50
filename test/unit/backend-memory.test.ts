import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory-backend.js';

describe('MemoryBackend', () => {
  it('reads back what was written and counts operations', async () => {
    const m = new MemoryBackend(4096);
    await m.write(Buffer.from('hello'), 100, false);
    await m.write(Buffer.from('!'), 105, true);
    const b = Buffer.alloc(6);
    await m.read(b, 100);
    expect(b.toString()).toBe('hello!');
    await m.flush();
    expect(m.stats).toEqual({ reads: 1, writes: 2, durableWrites: 1, flushes: 1, punches: 0, sidecarWrites: 0 });
  });

  it('injects queued and sticky failures with the given code', async () => {
    const m = new MemoryBackend(4096);
    m.failNext('read', 'EIO');
    m.failNext('read', 'ENOSPC');
    await expect(m.read(Buffer.alloc(1), 0)).rejects.toMatchObject({ code: 'EIO' });
    await expect(m.read(Buffer.alloc(1), 0)).rejects.toMatchObject({ code: 'ENOSPC' });
    await m.read(Buffer.alloc(1), 0);
    m.failAlways('flush', 'EIO');
    await expect(m.flush()).rejects.toMatchObject({ code: 'EIO' });
    await expect(m.flush()).rejects.toMatchObject({ code: 'EIO' });
    m.failAlways('flush', null);
    await m.flush();
  });

  it('rejects out-of-range I/O and I/O after close', async () => {
    const m = new MemoryBackend(1024);
    await expect(m.write(Buffer.alloc(2), 1023, false)).rejects.toMatchObject({ code: 'EINVAL' });
    await m.close();
    await expect(m.read(Buffer.alloc(1), 0)).rejects.toMatchObject({ code: 'EBADF' });
  });
});
