import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/pdu/buffer-pool.js';

describe('BufferPool', () => {
  it('hands out exact-length views of power-of-two buffers and reuses a released one', () => {
    const pool = new BufferPool();
    const a = pool.acquire(5000);
    expect(a.length).toBe(5000);
    expect(a.buffer.byteLength).toBe(8192);
    pool.release(a);
    expect(pool.freeBytes).toBe(8192);
    const b = pool.acquire(8192);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.freeBytes).toBe(0);
    // A different class never gets it.
    pool.release(b);
    expect(pool.acquire(4096).buffer).not.toBe(a.buffer);
  });

  it('ignores a second release, foreign buffers and sizes outside the classes', () => {
    const pool = new BufferPool(undefined, 64 * 1024);
    const a = pool.acquire(4096);
    pool.release(a);
    pool.release(a);
    pool.release(a.subarray(0, 10));
    expect(pool.freeBytes).toBe(4096);
    const first = pool.acquire(4096);
    const second = pool.acquire(4096);
    expect(first.buffer).toBe(a.buffer);
    expect(second.buffer).not.toBe(a.buffer); // not handed out twice
    pool.release(Buffer.alloc(4096));
    pool.release(Buffer.allocUnsafeSlow(4096));
    const small = pool.acquire(100);
    const huge = pool.acquire(128 * 1024);
    pool.release(small);
    pool.release(huge);
    expect(pool.freeBytes).toBe(0);
  });

  it('keeps at most maxFree bytes of free buffers in all', () => {
    const pool = new BufferPool(2 * 1024 * 1024);
    const small = Array.from({ length: 40 }, () => pool.acquire(4096));
    const big = Array.from({ length: 3 }, () => pool.acquire(1024 * 1024));
    for (const b of small) pool.release(b);
    for (const b of big) pool.release(b);
    // 160 KiB of small ones, then one 1 MiB buffer fits under 2 MiB; the other two are dropped.
    expect(pool.freeBytes).toBe(40 * 4096 + 1024 * 1024);
    expect(pool.acquire(1024 * 1024).buffer).toBe(big[0]!.buffer);
    expect(pool.acquire(1024 * 1024).buffer).not.toBe(big[1]!.buffer);
  });
});
