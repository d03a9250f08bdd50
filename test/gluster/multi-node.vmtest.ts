/**
 * The seed's topology: one LUN file on a replica-3 gluster volume, served by glfs-target on three
 * "nodes" — three glfs-target processes, each with its own FUSE mount (its own gluster client)
 * and its own node name — reached over real TCP by a scriptable initiator that behaves like
 * dm-multipath: it sends I/O to the active/optimized path, retries NOT READY "in transition",
 * and moves to another path when one fails. Covers: one identity and identical REPORT TARGET
 * PORT GROUPS through every node; the owner SIGKILLed mid-I/O (a survivor serves within
 * seconds, every acknowledged block reads back); restart as standby; SET TARGET PORT GROUPS;
 * a node owning the LU again reads what the other owner wrote (no stale page cache); the owner
 * SIGSTOPped and continued, its gluster client killed, and cut off from the bricks by a real
 * network partition and reconnected (no stale write, no acknowledged write lost); persistent reservations made through one node enforced through
 * another and surviving failover; the seed's verbatim flow with one IQN per node; and a second
 * server of the same node name refused.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, sleep, startGlfsTarget, type TargetHandle } from '../e2e/harness.js';
import { TestInitiator } from '../support/test-initiator.js';
import { recordTiming } from '../vm/vm.js';
import { GlusterVolume, glusterMissing } from './gluster.js';

const missing = glusterMissing();
const ci = process.env.CI === 'true';
const IQN = 'iqn.2016-06.org.gluster:app-store';
const BLOCK = 512;
const LUN_MIB = 64;

/** One session through one node's portal. */
class Path {
  /** The target port group of the port this path goes through (VPD 83h, designator type 5). */
  group = 0;

  private constructor(readonly node: number, readonly ini: TestInitiator) {}

  static async open(node: number, port: number, iqn: string, name = 'iqn.1994-05.com.redhat:client', isid = node): Promise<Path> {
    const ini = await TestInitiator.connect(port);
    const r = await ini.login({ initiatorName: name, targetName: iqn, isid: Buffer.from([0x80, 0, 0, 0, 0x10, isid]) });
    if (r.status !== 0) throw new Error(`login to node ${node} failed: 0x${r.status.toString(16)}`);
    const path = new Path(node, ini);
    path.group = designator(((await path.cmd(inquiryVpd(0x83), { inLen: 4096 })).data), 0x15)?.readUInt16BE(2) ?? 0;
    return path;
  }

  /**
   * Consume pending unit attentions with READ CAPACITY(10), which a standby port also serves
   * (TEST UNIT READY is NOT READY there, SPC-4 §5.15.2.4).
   */
  async settle(): Promise<void> {
    for (let i = 0; i < 10; i++) {
      const r = await this.cmd(Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { inLen: 8 });
      if (r.status === 0) return;
    }
    throw new Error(`node ${this.node}: unit attentions do not clear`);
  }

  /** One command; small Data-Out goes as immediate data. A unit attention is consumed and the command sent again, as initiators do. */
  async cmd(cdb: Buffer, o: { out?: Buffer; inLen?: number } = {}): Promise<{ status: number; key: number; asc: number; ascq: number; data: Buffer }> {
    for (let i = 0; ; i++) {
      const r = await this.once(cdb, o);
      if (r.status !== 2 || r.key !== 6 || i >= 8) return r;
    }
  }

  /** WRITE(10) of one block, past unit attentions. */
  async write(lba: number, data: Buffer): Promise<{ status: number; sense: Buffer | null }> {
    for (let i = 0; ; i++) {
      const r = await this.ini.write10(lba, data);
      if (r.status !== 2 || ((r.sense?.[2] ?? 0) & 0x0f) !== 6 || i >= 8) return r;
    }
  }

  private async once(cdb: Buffer, o: { out?: Buffer; inLen?: number }): Promise<{ status: number; key: number; asc: number; ascq: number; data: Buffer }> {
    const itt = this.ini.itt;
    await this.ini.sendPdu(this.ini.commandHeader(cdb, { read: (o.inLen ?? 0) > 0, write: o.out !== undefined, edtl: o.out?.length ?? o.inLen ?? 0 }), o.out ?? Buffer.alloc(0));
    const r = await this.ini.collect(itt, 20_000);
    const s = r.sense;
    return { status: r.status, key: s ? s[2]! & 0x0f : 0, asc: s ? s[12]! : 0, ascq: s ? s[13]! : 0, data: r.data };
  }

  close(): void {
    this.ini.close();
  }
}

const cdb10 = (op: number, lba: number, blocks: number) => {
  const c = Buffer.alloc(10);
  c[0] = op;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
};
const rtpgCdb = () => Buffer.from([0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
const inquiryVpd = (page: number) => Buffer.from([0x12, 1, page, 0x10, 0, 0]);
const stpgCdb = (len: number) => Buffer.from([0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, len, 0, 0]);
const block = (lba: number, gen: number) => {
  const b = Buffer.alloc(BLOCK, gen & 0xff);
  b.writeUInt32BE(lba, 0);
  b.writeUInt32BE(gen, 4);
  return b;
};

/** REPORT TARGET PORT GROUPS as [group, state code, relative port ids]. */
function parseRtpg(d: Buffer): Array<[number, number, number[]]> {
  const out: Array<[number, number, number[]]> = [];
  const end = 4 + d.readUInt32BE(0);
  for (let o = 4; o < end;) {
    const n = d[o + 7]!;
    const ports = Array.from({ length: n }, (_, i) => d.readUInt16BE(o + 8 + 4 * i + 2));
    out.push([d.readUInt16BE(o + 2), d[o]! & 0x0f, ports]);
    o += 8 + 4 * n;
  }
  return out;
}

/** REPORT TARGET PORT GROUPS through a path, past unit attentions (2Ah/06h when states change). */
async function rtpgOf(p: Path): Promise<Array<[number, number, number[]]>> {
  for (let i = 0; i < 5; i++) {
    const r = await p.cmd(rtpgCdb(), { inLen: 4096 });
    if (r.status === 0) return parseRtpg(r.data);
  }
  throw new Error(`node ${p.node}: REPORT TARGET PORT GROUPS keeps failing`);
}

/** The designator of VPD page 83h with association and type byte `assocType` (byte 1 & 0x3f). */
function designator(page83: Buffer, assocType: number): Buffer | undefined {
  for (let o = 4; o + 4 <= page83.length;) {
    const len = page83[o + 3]!;
    if ((page83[o + 1]! & 0x3f) === assocType) return page83.subarray(o + 4, o + 4 + len);
    o += 4 + len;
  }
  return undefined;
}

/** The NAA designator (type 3, LU association). */
const naaOf = (page83: Buffer): string => designator(page83, 0x03)?.toString('hex') ?? '';

const AO = 0;
const STANDBY = 2;

describe.skipIf(missing !== '' && !ci)('multi-node serving: one LUN file, three glfs-target nodes over three gluster clients', () => {
  let vol: GlusterVolume;
  const mounts: string[] = [];
  const ports: number[] = [];
  const nodes: Array<TargetHandle | undefined> = [undefined, undefined, undefined];
  const t0 = Date.now();

  const start = (i: number, iqn = IQN, env: Record<string, string> = {}) =>
    startGlfsTarget({
      iqn,
      portals: [`127.0.0.1:${ports[i]}`],
      luns: [{ size: `${LUN_MIB}M`, path: join(mounts[i]!, 'app-store.img') }],
      env: { GLFS_TARGET_NODE: `node${i + 1}`, ...env },
      startTimeoutMs: 60_000,
      iscsi: { nopInInterval: 0 },
    });

  beforeAll(async () => {
    if (missing !== '') throw new Error(`multi-node suite needs: ${missing}`);
    vol = await GlusterVolume.create(`glfs-multi-${process.pid}`);
    mounts.push(...(await vol.nodeMounts(3)));
    for (let i = 0; i < 3; i++) ports.push(await freePort());
  }, 240_000);

  afterAll(async () => {
    recordTiming('gluster-multi-node', Date.now() - t0);
    for (const n of nodes) await n?.stop().catch(() => undefined);
    await vol?.stop();
  }, 120_000);

  /** The path whose RTPG says its own group is active/optimized, among open paths. */
  async function ownerPath(paths: Path[]): Promise<Path> {
    for (let i = 0; i < 100; i++) {
      for (const p of paths) {
        const r = await p.cmd(rtpgCdb(), { inLen: 4096 }).catch(() => undefined);
        if (r?.status !== 0) continue;
        const groups = parseRtpg(r.data);
        if (groups.find((g) => g[0] === p.group)?.[1] === AO) return p;
      }
      await sleep(200);
    }
    throw new Error('no path reports itself active/optimized');
  }

  /**
   * Write `blocks` through whatever path serves, as multipath would: retry "in transition",
   * move on from standby or a failed path. Returns the blocks acknowledged GOOD.
   */
  async function writeThrough(paths: Path[], lbas: number[], gen: number): Promise<Map<number, number>> {
    const acked = new Map<number, number>();
    let current = await ownerPath(paths);
    for (const lba of lbas) {
      for (let attempt = 0; ; attempt++) {
        if (attempt > 600) throw new Error(`block ${lba} could not be written`);
        const r = await current.write(lba, block(lba, gen)).catch(() => ({ status: -1, sense: null }));
        if (r.status === 0) {
          acked.set(lba, gen);
          break;
        }
        const asc = r.sense ? [r.sense[12], r.sense[13]] : [];
        if (r.status === 2 && asc[0] === 0x04 && asc[1] === 0x0a) { await sleep(100); continue; }
        // Standby or a dead path: find the active one among the others.
        await sleep(100);
        const alive = paths.filter((p) => !p.ini.closed);
        current = await ownerPath(alive.length > 0 ? alive : paths);
      }
    }
    return acked;
  }

  async function verify(path: Path, acked: Map<number, number>): Promise<void> {
    for (const [lba, gen] of acked) {
      const r = await path.cmd(cdb10(0x28, lba, 1), { inLen: BLOCK });
      expect(r.status, `READ ${lba}`).toBe(0);
      expect(r.data.equals(block(lba, gen)), `block ${lba} holds generation ${gen}`).toBe(true);
    }
  }

  test('one IQN on three nodes: one identity, identical RTPG through every path (1 active/optimized + 2 standby)', async () => {
    nodes[1] = await start(1); // node2 first: it owns the file
    nodes[0] = await start(0);
    nodes[2] = await start(2);
    const paths = await Promise.all([0, 1, 2].map((i) => Path.open(i + 1, ports[i]!, IQN)));
    try {
      for (const p of paths) await p.settle();
      const naas = await Promise.all(paths.map(async (p) => naaOf((await p.cmd(inquiryVpd(0x83), { inLen: 4096 })).data)));
      expect(new Set(naas).size, naas.join(' ')).toBe(1);
      const serials = await Promise.all(paths.map(async (p) => (await p.cmd(inquiryVpd(0x80), { inLen: 255 })).data.subarray(4).toString()));
      expect(new Set(serials).size).toBe(1);
      const std = await paths[0]!.cmd(Buffer.from([0x12, 0, 0, 0, 96, 0]), { inLen: 96 });
      expect((std.data[5]! >> 4) & 3, 'INQUIRY TPGS').toBe(3);
      let reports: string[] = [];
      for (let i = 0; i < 50; i++) {
        reports = await Promise.all(paths.map(async (p) => JSON.stringify(await rtpgOf(p))));
        if (new Set(reports).size === 1 && JSON.parse(reports[0]!).length === 3) break;
        await sleep(200);
      }
      expect(new Set(reports).size, reports.join('\n')).toBe(1);
      const groups = JSON.parse(reports[0]!) as Array<[number, number, number[]]>;
      expect(groups.map((g) => g[1]).sort()).toEqual([AO, STANDBY, STANDBY]);
      expect(groups.find((g) => g[1] === AO)![0], 'node2 started first and owns the LUN').toBe(paths[1]!.group);
      // Each node's ports are its own: distinct relative target port ids.
      expect(new Set(groups.flatMap((g) => g[2])).size).toBe(3);
      // A standby refuses media commands with NOT READY, TARGET PORT IN STANDBY STATE while the
      // owner is serving I/O (no ping-pong): keep the owner busy for a few heartbeats first.
      const owner = paths[1]!;
      const standby = paths[0]!;
      let busy = true;
      const load = (async () => { while (busy) await owner.cmd(cdb10(0x28, 0, 1), { inLen: BLOCK }); })();
      await sleep(2000);
      const r = await standby.cmd(cdb10(0x28, 0, 1), { inLen: BLOCK });
      busy = false;
      await load;
      expect([r.status, r.key, r.asc, r.ascq]).toEqual([2, 2, 0x04, 0x0b]);
    } finally {
      paths.forEach((p) => p.close());
    }
  }, 180_000);

  /** SET TARGET PORT GROUPS through `p`: its own group becomes active/optimized. */
  async function activate(p: Path): Promise<void> {
    const list = Buffer.alloc(8);
    list[4] = AO;
    list.writeUInt16BE(p.group, 6);
    const r = await p.cmd(stpgCdb(8), { out: list });
    expect([r.status, r.key, r.asc], `STPG through node ${p.node}`).toEqual([0, 0, 0]);
  }

  test('a node that owns the LUN again reads what the other owner wrote since, not its own page cache', async () => {
    const paths = await Promise.all([0, 1].map((i) => Path.open(i + 1, ports[i]!, IQN, 'iqn.1994-05.com.redhat:client', 20 + i)));
    try {
      for (const p of paths) await p.settle();
      // Block 192 is byte 98304, where fio found stale zeros through the kernel initiator. The
      // 1 MiB extent is larger than one FUSE request, at an address Node does not page-align.
      const lbas = [192, 193, 4096];
      const extent = (gen: number) => Buffer.concat(Array.from({ length: 2048 }, (_, i) => block(8192 + i, gen)));
      let expected = new Map<number, number>();
      for (let round = 0; round < 4; round++) {
        const owner = paths[round % 2]!;
        await activate(owner);
        await owner.settle();
        // Each owner reads first (the reads fill its host's page cache when there is one), then writes.
        await verify(owner, expected);
        if (round > 0) {
          const r = await owner.cmd(cdb10(0x28, 8192, 2048), { inLen: 2048 * BLOCK });
          expect([r.status, r.key, r.asc, r.ascq], `1 MiB READ through node ${owner.node}`).toEqual([0, 0, 0, 0]);
          expect(r.data.equals(extent(9 + round)), `1 MiB extent through node ${owner.node}`).toBe(true);
        }
        const gen = 10 + round;
        for (const lba of lbas) expect((await owner.write(lba, block(lba, gen))).status, `WRITE ${lba} through node ${owner.node}`).toBe(0);
        // Past unit attentions like every write here: the former owner's heartbeat moving from
        // transitioning to standby is an access state change this node reports (2Ah/06h).
        const w = await owner.write(8192, extent(gen));
        expect(w.status, `1 MiB WRITE through node ${owner.node}: sense ${w.sense?.subarray(0, 18).toString('hex')}`).toBe(0);
        expected = new Map(lbas.map((lba) => [lba, gen]));
        await verify(owner, expected);
      }
    } finally {
      paths.forEach((p) => p.close());
    }
  }, 180_000);

  test('the owner SIGKILLed mid-I/O: a survivor serves within seconds and every acknowledged block reads back', async () => {
    const paths = await Promise.all([0, 1, 2].map((i) => Path.open(i + 1, ports[i]!, IQN)));
    try {
      for (const p of paths) await p.settle();
      const before = await writeThrough(paths, Array.from({ length: 64 }, (_, i) => i), 1);
      const owner = await ownerPath(paths);
      const victim = owner.node - 1;
      const writes = writeThrough(paths, Array.from({ length: 256 }, (_, i) => 64 + i), 2);
      await sleep(300);
      const killedAt = Date.now();
      await nodes[victim]!.kill('SIGKILL');
      const during = await writes;
      const survivor = await ownerPath(paths.filter((p) => p !== owner));
      recordTiming('multi-node-failover-sigkill', Date.now() - killedAt);
      await verify(survivor, new Map([...before, ...during]));
      // The former owner comes back as standby.
      await nodes[victim]!.restart();
      const back = await Path.open(victim + 1, ports[victim]!, IQN, 'iqn.1994-05.com.redhat:client', 9);
      try {
        await back.settle();
        let state = -1;
        for (let i = 0; i < 50 && state !== STANDBY; i++) {
          const groups = await rtpgOf(back);
          state = groups.find((g) => g[0] === back.group)?.[1] ?? -1;
          if (state !== STANDBY) await sleep(200);
        }
        expect(state, 'restarted former owner is standby').toBe(STANDBY);
        // SET TARGET PORT GROUPS through it makes it the owner again; the data is all there.
        await activate(back);
        const groups = await rtpgOf(back);
        expect(groups.find((g) => g[1] === AO)?.[0]).toBe(back.group);
        await verify(back, new Map([...before, ...during]));
      } finally {
        back.close();
      }
    } finally {
      paths.forEach((p) => p.close());
    }
  }, 300_000);

  test('the owner SIGSTOPped mid-I/O and continued, then its gluster client killed: nothing acknowledged is lost, nothing stale lands', async () => {
    const paths = await Promise.all([0, 1, 2].map((i) => Path.open(i + 1, ports[i]!, IQN, 'iqn.1994-05.com.redhat:client', 20 + i)));
    try {
      for (const p of paths) await p.settle();
      const owner = await ownerPath(paths);
      const victim = owner.node - 1;
      const pid = nodes[victim]!.pid()!;
      const first = writeThrough(paths, Array.from({ length: 128 }, (_, i) => 1024 + i), 3);
      await sleep(200);
      process.kill(pid, 'SIGSTOP');
      await sleep(8000); // longer than a heartbeat's staleness: the others see the owner as gone
      // Nobody took the LUN: the stopped owner still holds the file's lock.
      const others = paths.filter((p) => p !== owner);
      const groups = await rtpgOf(others[0]!);
      expect(groups.filter((g) => g[1] === AO).map((g) => g[0]), JSON.stringify(groups)).not.toContain(others[0]!.group);
      process.kill(pid, 'SIGCONT');
      const acked = await first;
      const now = await ownerPath(paths);
      await verify(now, acked);

      // Its gluster client dies under it: the lock goes with it, a survivor takes over, and the
      // former owner never answers GOOD to a write again.
      const owner2 = await ownerPath(paths);
      const v2 = owner2.node - 1;
      const clientPid = await vol.clientPid(mounts[v2]!);
      expect(clientPid, 'gluster client of the owner').toBeGreaterThan(0);
      const killedAt = Date.now();
      process.kill(clientPid!, 'SIGKILL');
      const late = await owner2.write(5000, block(5000, 9)).catch(() => ({ status: -1, sense: null }));
      expect(late.status, 'a write through the node whose client died is not acknowledged').not.toBe(0);
      const survivors = paths.filter((p) => p !== owner2);
      const acked2 = await writeThrough(survivors, Array.from({ length: 32 }, (_, i) => 2048 + i), 4);
      recordTiming('multi-node-failover-client-killed', Date.now() - killedAt);
      const survivor = await ownerPath(survivors);
      await verify(survivor, new Map([...acked, ...acked2]));
      const r = await survivor.cmd(cdb10(0x28, 5000, 1), { inLen: BLOCK });
      expect(r.data.equals(block(5000, 9)), 'the refused write did not land').toBe(false);
      await nodes[v2]!.stop().catch(() => undefined);
      nodes[v2] = undefined;
      await vol.mountClient(mounts[v2]!).catch(async () => {
        await sleep(1000);
        await vol.mountClient(mounts[v2]!);
      });
      nodes[v2] = await start(v2);
    } finally {
      paths.forEach((p) => p.close());
    }
  }, 300_000);

  test('persistent reservations are the LUN\'s: registered through one node, enforced through another, kept across failover', async () => {
    const A = 'iqn.1994-05.com.redhat:holder';
    const B = 'iqn.1994-05.com.redhat:intruder';
    // One initiator port (one ISID) reaching the LU through every node's target port.
    const byNode = await Promise.all([0, 1, 2].map((i) => Path.open(i + 1, ports[i]!, IQN, A, 40)));
    const intruders = await Promise.all([0, 1, 2].map((i) => Path.open(i + 1, ports[i]!, IQN, B, 50 + i)));
    try {
      for (const p of [...byNode, ...intruders]) await p.settle();
      const owner = await ownerPath(byNode);
      const standby = byNode.find((p) => p !== owner)!;
      const params = (key: bigint, sa: bigint, flags = 0) => {
        const b = Buffer.alloc(24);
        b.writeBigUInt64BE(key, 0);
        b.writeBigUInt64BE(sa, 8);
        b[20] = flags;
        return b;
      };
      const prout = (sa: number, type: number) => Buffer.from([0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0]);
      // REGISTER (ALL_TG_PT) through the standby, RESERVE Write Exclusive through the owner.
      expect((await standby.cmd(prout(0, 0), { out: params(0n, 0xabcn, 0x04) })).status).toBe(0);
      expect((await owner.cmd(prout(1, 1), { out: params(0xabcn, 0n) })).status).toBe(0);
      const intruder = intruders[owner.node - 1]!;
      const w = await intruder.write(10, block(10, 7));
      expect(w.status, 'a write from an unregistered initiator conflicts').toBe(0x18);
      // Failover: the reservation holds through the new owner.
      await nodes[owner.node - 1]!.kill('SIGKILL');
      const survivors = intruders.filter((p) => p.node !== owner.node);
      let status = -1;
      for (let i = 0; i < 100; i++) {
        for (const p of survivors) {
          const r = await p.write(10, block(10, 7)).catch(() => ({ status: -1, sense: null }));
          if (r.status === 0x18 || r.status === 0) { status = r.status; break; }
        }
        if (status !== -1) break;
        await sleep(200);
      }
      expect(status, 'after failover the reservation still refuses the intruder').toBe(0x18);
      // CLEAR through a survivor: the later tests' initiators are not registered.
      const holder = byNode.find((p) => p.node !== owner.node)!;
      expect((await holder.cmd(prout(3, 0), { out: params(0xabcn, 0n) })).status, 'PERSISTENT RESERVE OUT CLEAR').toBe(0);
      await nodes[owner.node - 1]!.restart();
    } finally {
      [...byNode, ...intruders].forEach((p) => p.close());
    }
  }, 300_000);

  test('a second server of the same node name is refused; the first keeps serving', async () => {
    let err = '';
    try {
      const second = await startGlfsTarget({ iqn: IQN, luns: [{ size: `${LUN_MIB}M`, path: join(mounts[0]!, 'app-store.img') }], env: { GLFS_TARGET_NODE: 'node1' }, startTimeoutMs: 30_000 });
      await second.stop();
    } catch (e) {
      err = (e as Error).message;
    }
    expect(err, 'the second server must not start').not.toBe('');
    expect(err).toMatch(/already served by this node|in use/);
    const p = await Path.open(1, ports[0]!, IQN);
    try {
      await p.settle();
      expect((await p.cmd(rtpgCdb(), { inLen: 4096 })).status).toBe(0);
    } finally {
      p.close();
    }
  }, 120_000);

  /** The first of `paths` whose RTPG says its own group is active/optimized, within `ms`. */
  async function awaitOwner(paths: Path[], ms: number): Promise<Path> {
    for (const until = Date.now() + ms; Date.now() < until; await sleep(250)) {
      for (const p of paths) {
        const groups = await rtpgOf(p).catch(() => []);
        if (groups.find((g) => g[0] === p.group)?.[1] === AO) return p;
      }
    }
    throw new Error(`no path became active/optimized within ${ms} ms`);
  }

  test('the owner cut off from the bricks mid-I/O, then reconnected: it acknowledges nothing, a survivor takes over, nothing it had in flight lands', async () => {
    // Node3's gluster client gets a network link of its own to the bricks, so the cut is real;
    // its initiators still reach it.
    await nodes[2]?.stop().catch(() => undefined);
    const link = await vol.mountOverLink(mounts[2]!, 3);
    nodes[2] = await start(2);
    const paths = await Promise.all([0, 1, 2].map((i) => Path.open(i + 1, ports[i]!, IQN, 'iqn.1994-05.com.redhat:client', 60 + i)));
    // One session per write in flight at the cut (a TestInitiator waits for one command at a time).
    const inFlight = await Promise.all(Array.from({ length: 8 }, (_, i) => Path.open(3, ports[2]!, IQN, 'iqn.1994-05.com.redhat:client', 70 + i)));
    try {
      for (const p of [...paths, ...inFlight]) await p.settle();
      const owner = paths[2]!;
      await activate(owner);
      const lbas = Array.from({ length: 8 }, (_, i) => 6000 + i);
      for (const lba of lbas) expect((await owner.write(lba, block(lba, 20))).status, `WRITE ${lba} before the cut`).toBe(0);
      const cutAt = Date.now();
      await link.cut();
      // The cut-off owner's writes (tcmu-runner#420): never acknowledged, and never landing later.
      const stale = inFlight.map((p, i) => p.write(lbas[i]!, block(lbas[i]!, 21)).then((r) => r.status, () => -1));
      // A survivor owns the LU once the bricks have dropped the silent client, and with it its lock.
      const survivors = paths.slice(0, 2);
      await awaitOwner(survivors, 120_000);
      recordTiming('multi-node-failover-partition', Date.now() - cutAt);
      const acked = await writeThrough(survivors, lbas, 22);
      expect(await Promise.all(stale), 'status of writes through the cut-off owner').not.toContain(0);
      await link.heal();
      const healedAt = Date.now();
      // It reconnects, finds the newer owner and steps down.
      let state = -1;
      for (let i = 0; i < 300 && state !== STANDBY; i++) {
        state = (await rtpgOf(owner).catch(() => [])).find((g) => g[0] === owner.group)?.[1] ?? -1;
        if (state !== STANDBY) await sleep(200);
      }
      expect(state, 'the reconnected former owner is standby').toBe(STANDBY);
      recordTiming('multi-node-partition-healed-standby', Date.now() - healedAt);
      await sleep(3000); // anything still queued at it would have landed by now
      await verify(await ownerPath(survivors), acked);
    } finally {
      [...paths, ...inFlight].forEach((p) => p.close());
    }
  }, 300_000);

  test('the seed\'s flow: one IQN per node, no multipath; the disk written through Node1 is the disk Node2 serves after Node1 fails', async () => {
    for (const n of nodes) await n?.stop().catch(() => undefined);
    const iqns = [1, 2, 3].map((i) => `iqn.2016-06.org.gluster:Node${i}`.toLowerCase());
    nodes[1] = await start(1, iqns[1]); // Node2 first
    nodes[0] = await start(0, iqns[0]);
    nodes[2] = await start(2, iqns[2]);
    const paths = await Promise.all([0, 1, 2].map((i) => Path.open(i + 1, ports[i]!, iqns[i]!)));
    try {
      for (const p of paths) await p.settle();
      // The initiator uses the disk it got from Node1 only (no multipath): its writes wait out
      // the implicit transition ("in transition") and then land.
      const acked = new Map<number, number>();
      for (let lba = 0; lba < 64; lba++) {
        for (let attempt = 0; ; attempt++) {
          const r = await paths[0]!.write(lba, block(lba, 5));
          if (r.status === 0) { acked.set(lba, 5); break; }
          expect([r.status, r.sense?.[12], r.sense?.[13]], `write ${lba} through Node1`).toEqual([2, 0x04, 0x0a]);
          if (attempt > 300) throw new Error('Node1 never took over');
          await sleep(100);
        }
      }
      await nodes[0]!.kill('SIGKILL');
      // The same disk through Node2.
      const node2 = paths[1]!;
      const readBack = async (): Promise<boolean> => {
        const r = await node2.cmd(cdb10(0x28, 0, 64), { inLen: 64 * BLOCK });
        return r.status === 0;
      };
      for (let i = 0; i < 200 && !(await readBack()); i++) await sleep(100);
      await verify(node2, acked);
    } finally {
      paths.forEach((p) => p.close());
    }
  }, 300_000);
});
