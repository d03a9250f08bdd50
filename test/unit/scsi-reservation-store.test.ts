// The reservation store: compare-and-swap commits, several device servers sharing one state
// (as the same LUN served through several nodes will), and strict loading of what is stored.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileBackend } from '../../src/backend/file-backend.js';
import { emptyPrState, registrationFor, type PrState } from '../../src/scsi/pr-state.js';
import { PR_SIDECAR, SidecarReservationStore, type CommitOutcome, type ReservationSnapshot, type ReservationStore } from '../../src/scsi/reservation-store.js';
import type { ItNexus } from '../../src/scsi/nexus.js';
import type { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { encodeIscsiTransportId, parseIscsiTransportId } from '../../src/scsi/transport-id.js';
import { cdb, clearUa, expectGood, expectSense, makeDevice, nexus, run, u16, u32 } from './scsi-helpers.js';

const CONFLICT = 0x18;
const A = nexus('a');
const B = nexus('b');

function registerIgnore(dev: ScsiDevice, n: ItNexus, key: bigint, aptpl = false) {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(key, 8);
  p[20] = aptpl ? 1 : 0;
  return run(dev, cdb([0x5f, 6, 0, 0, 0, ...u32(24), 0]), { nx: n, dataOut: p });
}
function register(dev: ScsiDevice, n: ItNexus, key: bigint, saKey: bigint) {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(key, 0);
  p.writeBigUInt64BE(saKey, 8);
  return run(dev, cdb([0x5f, 0, 0, 0, 0, ...u32(24), 0]), { nx: n, dataOut: p });
}
function reserveEa(dev: ScsiDevice, n: ItNexus, key: bigint) {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(key, 0);
  return run(dev, cdb([0x5f, 1, 3, 0, 0, ...u32(24), 0]), { nx: n, dataOut: p });
}
async function keys(dev: ScsiDevice, n: ItNexus): Promise<{ generation: number; keys: bigint[] }> {
  const d = (await run(dev, cdb([0x5e, 0, 0, 0, 0, 0, 0, ...u16(4096), 0]), { nx: n })).data!;
  return { generation: d.readUInt32BE(0), keys: Array.from({ length: d.readUInt32BE(4) / 8 }, (_, i) => d.readBigUInt64BE(8 + 8 * i)) };
}
const canWrite = async (dev: ScsiDevice, n: ItNexus) =>
  (await run(dev, cdb([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), { nx: n, dataOut: Buffer.alloc(512) })).status === 0;

/** A device server ("node") over its own memory backend, with `store` as its reservation store. */
async function node(store: ReservationStore) {
  const d = makeDevice({ reservationStore: store });
  await d.dev.opened();
  for (const n of [A, B]) await clearUa(d.dev, n);
  return d;
}

/** Delegates to `inner`; before the first compareAndSwap it runs `race` (another node's commit). */
class RacedStore implements ReservationStore {
  swaps = 0;
  constructor(
    private readonly inner: ReservationStore,
    private readonly race: () => Promise<unknown>,
  ) {}
  get persistsThroughPowerLoss(): boolean {
    return this.inner.persistsThroughPowerLoss;
  }
  load(): Promise<ReservationSnapshot> {
    return this.inner.load();
  }
  async compareAndSwap(expected: number, next: PrState): Promise<CommitOutcome> {
    if (this.swaps++ === 0) await this.race();
    return this.inner.compareAndSwap(expected, next);
  }
}

let dir: string;
const opened: FileBackend[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glfs-prstore-'));
});
afterEach(async () => {
  for (const b of opened.splice(0)) await b.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
async function fileBackend(): Promise<FileBackend> {
  const b = await FileBackend.open({ path: path.join(dir, 'lun.img'), sizeBytes: 64 * 512, create: true, readOnly: false, blockSize: 512 });
  opened.push(b);
  return b;
}
const sidecarPath = () => path.join(dir, `lun.img.${PR_SIDECAR}`);

describe('SidecarReservationStore: compare-and-swap', () => {
  it('a commit with a stale version is refused and changes nothing; the next load shows the winner', async () => {
    const files = await fileBackend();
    const one = new SidecarReservationStore(files, { keepAlways: true });
    const two = new SidecarReservationStore(files, { keepAlways: true });
    const base = await one.load();
    expect((await two.load()).version).toBe(base.version);
    const byOne: PrState = { ...emptyPrState(), generation: 1, registrations: [registrationFor(A, false, 1n)] };
    const byTwo: PrState = { ...emptyPrState(), generation: 1, registrations: [registrationFor(B, false, 2n)] };
    // Both started from the same version; only the first swap wins.
    const [r1, r2] = await Promise.all([one.compareAndSwap(base.version, byOne), two.compareAndSwap(base.version, byTwo)]);
    expect(r1).toEqual({ committed: true, version: base.version + 1 });
    expect(r2).toEqual({ committed: false });
    const seen = await two.load();
    expect(seen.version).toBe(base.version + 1);
    expect(seen.state.registrations.map((r) => r.key)).toEqual([1n]);
    // keepAlways: stored even with APTPL = 0, and the state says so.
    expect(JSON.parse(fs.readFileSync(sidecarPath(), 'utf8'))).toMatchObject({ version: 2, revision: 1, aptpl: false });
  });

  it('without keepAlways a state with APTPL = 0 stays in memory: no sidecar is written', async () => {
    const files = await fileBackend();
    const store = new SidecarReservationStore(files);
    const next: PrState = { ...emptyPrState(), generation: 1, registrations: [registrationFor(A, false, 1n)] };
    expect(await store.compareAndSwap(0, next)).toEqual({ committed: true, version: 1 });
    expect(fs.existsSync(sidecarPath())).toBe(false);
    expect((await store.load()).state).toBe(next);
    expect(await store.compareAndSwap(0, emptyPrState())).toEqual({ committed: false });
  });
});

describe('two device servers sharing one reservation state', () => {
  it('one store object: a registration made through node A is enforced through node B after refresh', async () => {
    const store = new SidecarReservationStore(await fileBackend());
    const a = await node(store);
    const b = await node(store);
    expectGood(await registerIgnore(a.dev, A, 0xan));
    expectGood(await reserveEa(a.dev, A, 0xan));
    expect(await canWrite(b.dev, B)).toBe(true); // B's cached state is stale
    expect(await b.lu.reservations.refresh()).toBe(true);
    expect(await b.lu.reservations.refresh()).toBe(false);
    expect(await canWrite(b.dev, B)).toBe(false);
    expect(await canWrite(b.dev, A)).toBe(true);
    expect(await keys(b.dev, B)).toEqual({ generation: 1, keys: [0xan] });
  });

  it('two stores over the same sidecar file (keepAlways): each node sees the other\'s commits', async () => {
    const files = await fileBackend();
    const a = await node(new SidecarReservationStore(files, { keepAlways: true }));
    const b = await node(new SidecarReservationStore(files, { keepAlways: true }));
    expectGood(await registerIgnore(a.dev, A, 1n));
    // Node B plans its REGISTER against the stored state, not its stale cache.
    expectGood(await registerIgnore(b.dev, B, 2n));
    expect(await keys(b.dev, B)).toEqual({ generation: 2, keys: [1n, 2n] });
    await a.lu.reservations.refresh();
    expect(await keys(a.dev, A)).toEqual({ generation: 2, keys: [1n, 2n] });
  });

  it('losing a compare-and-swap race: the command is planned again against the winner\'s state', async () => {
    const shared = new SidecarReservationStore(await fileBackend(), { keepAlways: true });
    const a = await node(shared);
    const raced = new RacedStore(shared, () => registerIgnore(a.dev, A, 1n));
    const b = await node(raced);
    expectGood(await registerIgnore(b.dev, B, 2n));
    expect(raced.swaps).toBe(2);
    expect(await keys(b.dev, B)).toEqual({ generation: 2, keys: [1n, 2n] });
  });

  it('the second plan can give another answer: REGISTER with key 0 after the port registered elsewhere conflicts', async () => {
    const shared = new SidecarReservationStore(await fileBackend(), { keepAlways: true });
    const a = await node(shared);
    const raced = new RacedStore(shared, () => registerIgnore(a.dev, B, 7n));
    const b = await node(raced);
    expect((await register(b.dev, B, 0n, 8n)).status).toBe(CONFLICT);
    expect(await keys(b.dev, B)).toEqual({ generation: 1, keys: [7n] });
  });

  it('a store that never lets a commit through: BUSY, nothing changed', async () => {
    const never: ReservationStore = {
      persistsThroughPowerLoss: true,
      load: async () => ({ version: 0, state: emptyPrState() }),
      compareAndSwap: async () => ({ committed: false }),
    };
    const { dev } = await node(never);
    expect((await registerIgnore(dev, A, 1n)).status).toBe(0x08);
    expect(await keys(dev, A)).toEqual({ generation: 0, keys: [] });
  });
});

describe('loading a stored state', () => {
  async function deviceOver(content: string) {
    fs.writeFileSync(sidecarPath(), content);
    return makeDevice({ backend: await fileBackend() });
  }

  for (const [what, content] of [
    ['not JSON', '{ not json'],
    ['a foreign format', JSON.stringify({ version: 3, generation: 0, registrations: [] })],
    ['a TransportID naming another port', JSON.stringify({
      version: 2, revision: 1, generation: 1, aptpl: true, reservation: null,
      registrations: [{ initiatorPort: A.initiatorPort, transportId: encodeIscsiTransportId(B.initiatorPort).toString('hex'), targetPort: A.targetPort.name, relativeTargetPortId: 1, key: '0x1' }],
    })],
  ] as const) {
    it(`${what}: the LU refuses I/O with NOT READY / MANUAL INTERVENTION REQUIRED`, async () => {
      const { dev } = await deviceOver(content);
      await expect(dev.opened()).rejects.toThrow(/persisted reservation state/);
      expectSense(await run(dev, cdb([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), { nx: A }), 0x02, 0x04, 0x03);
      expectGood(await run(dev, cdb([0x12, 0, 0, 0, 36, 0]), { nx: A }));
    });
  }

  it('a version 1 file (0.1.0): relative port from the TPGT, TransportID encoded from the port name', async () => {
    const tp = nexus('a', false, { tpgt: 3 });
    const { dev } = await deviceOver(JSON.stringify({
      version: 1, generation: 4, aptpl: true, reservation: { type: 3, holder: 0 },
      registrations: [{ initiatorPort: tp.initiatorPort, targetPort: tp.targetPort.name, key: '0x0000000000000005' }],
    }));
    await dev.opened();
    await clearUa(dev, tp);
    const d = (await run(dev, cdb([0x5e, 3, 0, 0, 0, 0, 0, ...u16(4096), 0]), { nx: tp })).data!;
    expect(d.readUInt32BE(0)).toBe(4);
    expect(d.readBigUInt64BE(8)).toBe(5n);
    expect(d[8 + 12]! & 1).toBe(1); // R_HOLDER
    expect(d.readUInt16BE(8 + 18)).toBe(3);
    const tid = d.subarray(8 + 24, 8 + 24 + d.readUInt32BE(8 + 20));
    expect(parseIscsiTransportId(tid)).toEqual({ initiatorPort: tp.initiatorPort, length: tid.length });
    expect(await canWrite(dev, tp)).toBe(true);
    await clearUa(dev, B);
    expect(await canWrite(dev, B)).toBe(false);
  });
});
