// 4 KiB sequential writes at QD1 on a gluster replica-3 volume, four ways: fio through the FUSE
// mount (psync) and through libgfapi (fio's gfapi engine, as tcmu-runner's glfs handler and a
// libgfapi backend would reach the volume), each buffered and with O_DIRECT. IOPS, p50 and p99
// completion latency. The volume is test/gluster/gluster.ts's, torn down at the end.
//
//   npx tsx bench/gluster-engines.ts [--count 3000]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from '../test/e2e/harness.js';
import { GlusterVolume, GLUSTER_IP, GLUSTER_NS } from '../test/gluster/gluster.js';
import { fillBackingFile } from './workloads.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '3000' } } });
interface FioWrite { iops: number; clat_ns: { percentile: Record<string, number> } }

const vol = await GlusterVolume.create('glfs-engines');
try {
  const file = join(vol.mount, 'lun.img');
  await fillBackingFile(file);
  const common = ['--name=w', '--rw=write', '--bs=4096', '--iodepth=1', '--size=1G', `--io_size=${Number(values.count) * 4096}`,
    '--invalidate=0', '--output-format=json'];
  const ways: Array<[string, string, string[]]> = [];
  for (const direct of [0, 1]) {
    ways.push([`FUSE mount (psync), direct=${direct}`, 'fio', [...common, `--filename=${file}`, '--ioengine=psync', `--direct=${direct}`]]);
    // libgfapi talks to glusterd and the bricks itself: from inside the volume's namespace.
    ways.push([`libgfapi (gfapi), direct=${direct}`, 'nsenter', [`--net=/var/run/netns/${GLUSTER_NS}`, 'fio', ...common, '--ioengine=gfapi',
      `--volume=${vol.name}`, `--brick=${GLUSTER_IP}`, '--filename=lun.img', `--direct=${direct}`]]);
  }
  console.log('| path | IOPS | p50 µs | p99 µs |\n|---|---:|---:|---:|');
  for (const [name, cmd, args] of ways) {
    const r = await run(cmd, args, { timeout: 600_000 });
    if (r.code !== 0) throw new Error(`${name}: ${r.stdout}${r.stderr}`);
    const w = (JSON.parse(r.stdout.slice(r.stdout.search(/^\{/m))) as { jobs: Array<{ write: FioWrite }> }).jobs[0]!.write;
    const pct = (k: string) => Math.round(w.clat_ns.percentile[k]! / 1000);
    console.log(`| ${name} | ${Math.round(w.iops)} | ${pct('50.000000')} | ${pct('99.000000')} |`);
  }
} finally {
  await vol.stop();
}
