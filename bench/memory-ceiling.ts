// Peak memory of a running glfs-target under the data-path attacks of issue 11 (#3, #4), to
// 127.0.0.1 only, bounded in time and count. Starts the built server (`npm run build` first),
// drives each attack, and reports VmRSS / VmHWM from /proc/<pid>/status.
//
//   npx tsx bench/memory-ceiling.ts [--bin bin/glfs-target.js] [--sessions 4] [--seconds 6]
//
// Attacks: (a) buffered Data-Out: per session, two TEST UNIT READY with W=1 and a 32 MiB EDTL,
// answering every R2T but the last PDU; (b) reads never taken: per session, 64 READ(10) of
// 65,535 blocks with the socket never read; (c) CmdSN gap: per session (10), 127 WRITEs of
// 256 KiB immediate data parked behind a missing CmdSN. Each runs for --seconds, alongside a
// victim session timing 4 KiB reads.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Opcode } from '../src/pdu/opcodes.js';
import { TestInitiator } from '../test/support/test-initiator.js';

const { values } = parseArgs({
  options: {
    bin: { type: 'string', default: 'bin/glfs-target.js' },
    sessions: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '6' },
  },
});
const MiB = 1024 * 1024;
const TARGET = 'iqn.2016-06.org.gluster:memtest';
const sessions = Number(values.sessions);
const seconds = Number(values.seconds);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(key)) ?? '')?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS:'), hwm: kb('VmHWM:') };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

let isid = 0;
async function login(port: number, keys: Record<string, string> = {}): Promise<TestInitiator> {
  const ini = await TestInitiator.connect(port);
  const res = await ini.login({ isid: Buffer.from([0x80, 0, 0, 0, (++isid) >> 8, isid & 0xff]), targetName: TARGET, keys });
  if (res.status !== 0) throw new Error(`login status 0x${res.status.toString(16)}`);
  await ini.clearUnitAttentions();
  return ini;
}

function cdb10(op: number, lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = op;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

/** A victim timing 4 KiB reads for the attack's duration: the slowest one, and how many failed. */
async function victim(port: number, ms: number): Promise<string> {
  let ini: TestInitiator;
  try {
    ini = await login(port);
  } catch (err) {
    return `victim could not log in (${(err as Error).message})`;
  }
  let slowest = 0;
  let ok = 0;
  let failed = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t = Date.now();
    try {
      await ini.read10(0, 8);
      ok++;
    } catch {
      failed++;
      break;
    }
    slowest = Math.max(slowest, Date.now() - t);
    await sleep(50);
  }
  ini.close();
  return `victim: ${ok} reads, slowest ${slowest} ms${failed ? `, then no answer (${failed})` : ''}`;
}

async function bufferedDataOut(port: number): Promise<TestInitiator[]> {
  const out: TestInitiator[] = [];
  for (let i = 0; i < sessions; i++) {
    const ini = await login(port, { InitialR2T: 'Yes', ImmediateData: 'No', MaxBurstLength: '1048576' });
    out.push(ini);
    for (let k = 0; k < 2; k++) await ini.sendPdu(ini.commandHeader(Buffer.alloc(6), { write: true, edtl: 32 * MiB }));
    // Answer each R2T, all but the last PDU of the transfer.
    void (async () => {
      const chunk = Buffer.alloc(256 * 1024, 0xaa);
      for (;;) {
        const pdu = await ini.next(60_000).catch(() => null);
        if (pdu === null) return;
        if (pdu.opcode !== Opcode.R2T) continue;
        const offset = pdu.bhs.readUInt32BE(40);
        const length = pdu.bhs.readUInt32BE(44);
        let sn = 0;
        for (let o = offset; o < offset + length; o += chunk.length) {
          if (o + chunk.length >= 32 * MiB) break;
          await ini.sendPdu(ini.dataOutHeader(pdu.itt, pdu.targetTransferTag, sn++, o, o + chunk.length === offset + length), chunk);
        }
      }
    })();
  }
  return out;
}

async function readsNeverTaken(port: number): Promise<TestInitiator[]> {
  const out: TestInitiator[] = [];
  for (let i = 0; i < sessions; i++) {
    const ini = await login(port);
    ini.socket.pause();
    for (let k = 0; k < 64; k++) await ini.sendPdu(ini.commandHeader(cdb10(0x28, 0, 65535), { read: true, edtl: 65535 * 512 }));
    out.push(ini);
  }
  return out;
}

async function cmdSNGap(port: number): Promise<TestInitiator[]> {
  const out: TestInitiator[] = [];
  const data = Buffer.alloc(256 * 1024, 1);
  for (let i = 0; i < 10; i++) {
    const ini = await login(port, { FirstBurstLength: '262144' });
    ini.cmdSN++;
    for (let k = 0; k < 127 && !ini.closed; k++) {
      await ini.sendPdu(ini.commandHeader(cdb10(0x2a, k * 512, 512), { write: true, edtl: data.length }), data);
    }
    out.push(ini);
  }
  return out;
}

/** Start the server on a fresh port and LUN; resolves once it accepts connections. */
async function startServer(dir: string): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const config = {
    portals: [`127.0.0.1:${port}`],
    targets: [{ iqn: TARGET, luns: [{ lun: 0, path: path.join(dir, `lun-${port}.img`), size: '64M' }], acl: [{ initiator: '*' }] }],
    iscsi: { nopInInterval: 5, nopInTimeout: 5 },
  };
  const file = path.join(dir, `config-${port}.json`);
  writeFileSync(file, JSON.stringify(config));
  const server = spawn(process.execPath, [values.bin!, 'serve', '--config', file, '--log-level', 'error', '--data-dir', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((r) => server.once('exit', r));
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((r) => net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.destroy(); r(true); }).on('error', () => r(false)));
    if (up) break;
    await sleep(100);
  }
  return { port, pid: server.pid!, stop: async () => { server.kill('SIGKILL'); await exited; } };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'glfs-memory-'));
  const fmt = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
  const attacks: Array<[string, (port: number) => Promise<TestInitiator[]>]> = [
    [`buffered Data-Out never completed (${sessions} sessions × 2 × 32 MiB)`, bufferedDataOut],
    [`reads never taken (${sessions} sessions × 64 × 32 MiB)`, readsNeverTaken],
    ['CmdSN gap (10 sessions × 127 × 256 KiB)', cmdSNGap],
  ];
  try {
    for (const [name, attack] of attacks) {
      const { port, pid, stop } = await startServer(dir);
      try {
        const idle = memory(pid).rss;
        const started = attack(port).catch((err: unknown) => {
          console.log(`  attack cut short: ${(err as Error).message}`);
          return [] as TestInitiator[];
        });
        const seen = await victim(port, seconds * 1000);
        // An attack whose logins the server no longer answers is cut short.
        const attackers = await Promise.race([
          started,
          sleep(10_000).then(() => { console.log('  attack cut short: still logging in after the victim'); return []; }),
        ]);
        const m = memory(pid);
        console.log(`${name}: VmHWM ${fmt(m.hwm)} (idle RSS ${fmt(idle)}), RSS at the end ${fmt(m.rss)}; ${seen}`);
        for (const a of attackers) a.close();
        void started.then((late) => { for (const a of late) a.close(); });
      } finally {
        await stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.on('unhandledRejection', (err) => console.log(`  (ignored: ${(err as Error).message})`));
await main();
