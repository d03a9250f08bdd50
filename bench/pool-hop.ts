// What one libuv thread-pool round trip costs a 4 KiB write, against the same write done
// synchronously: `fs.write` (the pool) and `fs.writeSync` on the event loop, one at a time, on a
// cached local file (docs/benchmarks.md, "What stands in the way"). Third: a worker thread of our
// own, handed each write through shared memory (Atomics.notify), the event loop waiting up to
// 20 µs for the answer (Atomics.wait) before it waits asynchronously — a hop without libuv.
//
//   npx tsx bench/pool-hop.ts [--dir DIR] [--count 20000]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const { values } = parseArgs({ options: { dir: { type: 'string', default: tmpdir() }, count: { type: 'string', default: '20000' } } });
const n = Number(values.count);
const dir = fs.mkdtempSync(join(values.dir, 'glfs-hop-'));
const fd = fs.openSync(join(dir, 'file'), 'w+');
const buf = Buffer.alloc(4096, 1);
const at = (i: number) => (i % 1000) * 4096;
// Shared memory: [0] work posted, [1] block index, [2] done; then the data.
const shared = new SharedArrayBuffer(16 + buf.length);
const ctl = new Int32Array(shared, 0, 4);
Buffer.from(shared, 16).set(buf);
const worker = new Worker(`
  const { workerData: { shared, fd } } = require('node:worker_threads');
  const fs = require('node:fs');
  const ctl = new Int32Array(shared, 0, 4);
  const data = Buffer.from(shared, 16);
  for (;;) {
    Atomics.wait(ctl, 0, 0);
    fs.writeSync(fd, data, 0, data.length, Atomics.load(ctl, 1) * 4096);
    Atomics.store(ctl, 0, 0);
    Atomics.store(ctl, 2, 1);
    Atomics.notify(ctl, 2);
  }`, { eval: true, workerData: { shared, fd } });

async function viaWorker(): Promise<number> {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    Atomics.store(ctl, 2, 0);
    Atomics.store(ctl, 1, i % 1000);
    Atomics.store(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    if (Atomics.wait(ctl, 2, 0, 0.02) !== 'timed-out') continue;
    // Atomics.waitAsync (Node 16+; ES2024, newer than the project's lib setting).
    const later = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> } }).waitAsync(ctl, 2, 0);
    if (later.async) await later.value;
  }
  return Number(process.hrtime.bigint() - t) / n / 1000;
}

try {
  for (let round = 0; round < 2; round++) {
    let submit = 0n;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = process.hrtime.bigint();
        fs.write(fd, buf, 0, buf.length, at(i), (err) => (err ? reject(err) : resolve()));
        submit += process.hrtime.bigint() - s;
      });
    }
    const pool = Number(process.hrtime.bigint() - t0) / n / 1000;
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fs.writeSync(fd, buf, 0, buf.length, at(i));
    const sync = Number(process.hrtime.bigint() - t1) / n / 1000;
    const own = await viaWorker();
    console.log(`round ${round + 1}: fs.write ${pool.toFixed(1)} µs per write (of which queueing it ${(Number(submit) / n / 1000).toFixed(1)} µs), fs.writeSync ${sync.toFixed(1)} µs, own worker ${own.toFixed(1)} µs`);
  }
} finally {
  await worker.terminate();
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
}
