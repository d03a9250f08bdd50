/**
 * Network mutation fuzzer against a real server on 127.0.0.1 (in this process):
 *
 *   node --import tsx test/fuzz/network/run.ts [--seed N] [--seconds S] [--rounds N]
 *
 * Each round: CONNECTIONS hostile connections at once (hostile-connection.ts), then a fresh
 * well-behaved session must log in and read back what it writes. Fails (exit 1) when the server
 * throws, answers with something unparseable, refuses or corrupts the well-behaved session, or
 * its RSS grows past the data budget plus RSS_ALLOWANCE over the RSS after the first round.
 */
import { parseArgs } from 'node:util';
import { Prng } from '../engine/mutate.js';
import { startInProcessServer, TEST_TARGET } from '../../support/in-process-server.js';
import { hostileConnection } from './hostile-connection.js';
import { checkWellBehavedSession } from './well-behaved-session.js';

const CONNECTIONS = 4;
const DATA_BUDGET = 16 * 1024 * 1024;
/** RSS beyond the data budget: garbage not yet collected, pools, sockets (measured: see README). */
const RSS_ALLOWANCE = 96 * 1024 * 1024;
const LUN_BYTES = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '20' },
    rounds: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
  },
});

let crashed: unknown = null;
process.on('uncaughtException', (error) => { crashed = error; });
process.on('unhandledRejection', (error) => { crashed = error; });

const server = await startInProcessServer({
  iscsi: { maxDataInFlight: DATA_BUDGET, nopInTimeout: 2, loginTimeout: 5 },
  targets: (dir) => [{ iqn: TEST_TARGET, luns: [{ lun: 0, path: `${dir}/lun0.img`, sizeBytes: LUN_BYTES, create: true, readOnly: false, blockSize: 512, writeCache: true, serial: 'FUZZ0001', naa: '6001405abcdef0123456789abcdef012', vendor: 'GLFS', product: 'glfs-target', revision: '0001' }], acl: [{ initiator: '*', readOnly: false }] }],
});
const rng = new Prng(Number(values.seed));
const started = performance.now();
const deadline = started + Number(values.seconds) * 1000;
let rounds = 0;
let connections = 0;
let responses = 0;
let baseline = 0;
let peak = 0;
let failure: string | null = null;

try {
  while (rounds < Number(values.rounds) && performance.now() < deadline && failure === null) {
    const results = await Promise.all(Array.from({ length: CONNECTIONS }, () => hostileConnection(server.port, TEST_TARGET, rng)));
    connections += results.length;
    for (const r of results) {
      responses += r.responses;
      if (r.problem !== null) failure = r.problem;
    }
    await checkWellBehavedSession(server.port, TEST_TARGET, rng, LUN_BYTES / 512);
    rounds++;
    const rss = process.memoryUsage().rss;
    if (rounds === 1) baseline = rss;
    peak = Math.max(peak, rss);
    if (crashed !== null) failure = `server threw: ${String(crashed)}`;
    else if (peak - baseline > DATA_BUDGET + RSS_ALLOWANCE) failure = `RSS grew by ${((peak - baseline) / MiB).toFixed(0)} MiB`;
  }
} catch (error) {
  failure = `round ${rounds + 1}: ${error instanceof Error ? error.message : String(error)}`;
} finally {
  await server.stop();
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `network: ${rounds} rounds, ${connections} hostile connections (${Math.round(connections / seconds)}/s), ${responses} responses in ${seconds.toFixed(1)} s; ` +
    `RSS ${(baseline / MiB).toFixed(0)} MiB after round 1, peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - baseline) / MiB).toFixed(0)})`,
);
if (failure !== null) {
  console.error(`network: FINDING with seed ${values.seed}: ${failure}`);
  process.exit(1);
}
process.exit(0);
