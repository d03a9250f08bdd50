// Buffers that a backend call given up on may still read or fill are never handed out again
// (bounded-backend.ts pins them): the streamed write's last batch is dropped, not returned to the pool.
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/pdu/buffer-pool.js';
import { TaskDataStream } from '../../src/iscsi/data-out-stream.js';

async function streamWithOneBatch(pool: BufferPool): Promise<{ stream: TaskDataStream; batch: Buffer[] }> {
  const stream = new TaskDataStream(8192, () => {}, pool);
  stream.push(pool.acquire(4096).fill(1));
  stream.push(pool.acquire(4096).fill(2));
  return { stream, batch: (await stream.next())! };
}

describe('a streamed write whose last batch is still in a system call', () => {
  it('gives the batch back to the pool when the handler is done with it', async () => {
    const pool = new BufferPool();
    const { stream } = await streamWithOneBatch(pool);
    stream.handlerDone(false);
    expect(pool.freeBytes).toBe(8192);
  });

  it('drops it when a write of it was given up on: the pool never hands it to another command', async () => {
    const pool = new BufferPool();
    const { stream, batch } = await streamWithOneBatch(pool);
    stream.handlerDone(true);
    expect(pool.freeBytes).toBe(0);
    const next = [pool.acquire(4096), pool.acquire(4096)];
    for (const b of next) expect(batch.some((p) => p.buffer === b.buffer)).toBe(false);
  });
});
