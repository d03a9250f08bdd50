import { describe, expect, it } from 'vitest';
import { RequestMerger, type IoRequest } from '../../src/backend/request-merger.js';

/** Records what the merger asks of the executor; `failMerged` makes merged calls fail. */
function recorder(opts: { failMerged?: boolean; failSingleAt?: number } = {}) {
  const singles: number[] = [];
  const merged: Array<{ offset: number; bytes: number; buffers: number; durable: boolean }> = [];
  const merger = new RequestMerger({
    single: async (r: IoRequest) => {
      singles.push(r.offset);
      if (r.offset === opts.failSingleAt) throw Object.assign(new Error('EIO'), { code: 'EIO' });
    },
    merged: async (offset, bufs, bytes, durable) => {
      merged.push({ offset, bytes, buffers: bufs.length, durable });
      if (opts.failMerged) throw new Error('merged failed');
      return true;
    },
  });
  return { merger, singles, merged };
}

const b = (n: number) => Buffer.alloc(n);

describe('RequestMerger', () => {
  it('turns requests that continue each other (in arrival order) into one call, others pass singly', async () => {
    const { merger, singles, merged } = recorder();
    await Promise.all([
      merger.submit(0, [b(4096)], 4096, false),
      merger.submit(4096, [b(4096)], 4096, false),
      merger.submit(8192, [b(2048), b(2048)], 4096, true),
      merger.submit(1 << 20, [b(512)], 512, false), // gap: its own request
      merger.submit(0, [b(512)], 512, false), // backwards: not merged either
    ]);
    expect(merged).toEqual([{ offset: 0, bytes: 12288, buffers: 4, durable: true }]);
    expect(singles).toEqual([1 << 20, 0]);
  });

  it('requests submitted in a later tick form a new batch', async () => {
    const { merger, singles, merged } = recorder();
    await merger.submit(0, [b(4096)], 4096, false);
    await merger.submit(4096, [b(4096)], 4096, false);
    expect(merged).toEqual([]);
    expect(singles).toEqual([0, 4096]);
  });

  it('retries a failed merged request as its parts, each with its own outcome', async () => {
    const { merger, singles } = recorder({ failMerged: true, failSingleAt: 4096 });
    const results = await Promise.allSettled([0, 4096, 8192].map((o) => merger.submit(o, [b(4096)], 4096, false)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(singles.sort((x, y) => x - y)).toEqual([0, 4096, 8192]);
  });

  it('caps a merged request at 8 MiB', async () => {
    const { merger, merged } = recorder();
    const MiB = 1 << 20;
    await Promise.all(Array.from({ length: 12 }, (_, i) => merger.submit(i * MiB, [b(16)], MiB, false)));
    expect(merged.map((m) => [m.offset / MiB, m.bytes / MiB])).toEqual([[0, 8], [8, 4]]);
  });
});
