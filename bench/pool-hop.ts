// What one libuv thread-pool round trip costs a 4 KiB write, against the same write done
// synchronously: `fs.write` (the pool) and `fs.writeSync` on the event loop, one at a time, on a
// cached local file (docs/benchmarks.md, "What stands in the way").
//
//   npx tsx bench/pool-hop.ts [--dir DIR] [--count 20000]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { dir: { type: 'string', default: tmpdir() }, count: { type: 'string', default: '20000' } } });
const n = Number(values.count);
const dir = fs.mkdtempSync(join(values.dir, 'glfs-hop-'));
const fd = fs.openSync(join(dir, 'file'), 'w+');
const buf = Buffer.alloc(4096, 1);
const at = (i: number) => (i % 1000) * 4096;
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
    console.log(`round ${round + 1}: fs.write ${pool.toFixed(1)} µs per write (of which queueing it ${(Number(submit) / n / 1000).toFixed(1)} µs), fs.writeSync ${sync.toFixed(1)} µs`);
  }
} finally {
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
}
