/**
 * Latency at queue depth 1, as percentiles: what one synchronous writer (a database's fsync path)
 * feels per command. `qemu-img bench` reports only a total time, so a QD1 workload is driven once
 * more by the project's Node initiator (test/support/test-initiator.ts): one session, the same 4 KiB
 * sequential pattern, each command timed from send to status. The initiator is the same for every
 * target, so its own cost (tens of microseconds) is in every figure alike.
 */
import { TestInitiator } from '../test/support/test-initiator.js';
import type { Workload } from './workloads.js';

export interface Latency {
  p50Us: number;
  p99Us: number;
}

const BLOCK = 512;

/** The percentile `p` (0–100) of `sorted` (ascending), nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** `count` commands of QD1 workload `w` against `url` (iscsi://host:port/iqn/lun), after 200 untimed ones. */
export async function iscsiLatency(url: string, w: Workload, count: number, lunBytes: number): Promise<Latency> {
  const m = /^iscsi:\/\/([^:/]+):(\d+)\/([^/]+)\/(\d+)$/.exec(url);
  if (!m || w.depth !== 1) throw new Error(`iscsiLatency: ${url} / ${w.name}`);
  const ini = await TestInitiator.connect(Number(m[2]), m[1]);
  try {
    const r = await ini.login({ initiatorName: 'iqn.2026-12.org.glfs-target:bench-latency', targetName: m[3]! });
    if (r.status !== 0) throw new Error(`login to ${url} failed: 0x${r.status.toString(16)}`);
    ini.lun = Number(m[4]);
    await ini.clearUnitAttentions();
    const blocks = w.size / BLOCK;
    const step = (w.step ?? w.size) / BLOCK;
    const wrap = lunBytes / BLOCK - blocks;
    const data = Buffer.alloc(w.size, 0x5c);
    const times: number[] = [];
    let lba = 0;
    for (let i = 0; i < 200 + count; i++) {
      const t0 = process.hrtime.bigint();
      if (w.write) {
        const res = await ini.write10(lba, data, BLOCK);
        if (res.status !== 0) throw new Error(`WRITE(10) at ${lba}: status 0x${res.status.toString(16)}`);
      } else {
        await ini.read10(lba, blocks, BLOCK);
      }
      if (i >= 200) times.push(Number(process.hrtime.bigint() - t0) / 1000);
      lba = lba + step > wrap ? 0 : lba + step;
    }
    times.sort((a, b) => a - b);
    return { p50Us: percentile(times, 50), p99Us: percentile(times, 99) };
  } finally {
    ini.close();
  }
}
