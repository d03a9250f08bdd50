import { describe, expect, it, vi } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import { LogicalUnit } from '../../src/scsi/logical-unit.js';
import { PR_SIDECAR } from '../../src/scsi/reservation-store.js';
import { encodeIscsiTransportId, parseIscsiTransportId } from '../../src/scsi/transport-id.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import type { ItNexus } from '../../src/scsi/nexus.js';
import type { ScsiResponse } from '../../src/scsi/types.js';
import { KEY, cdb, nexus, clearUa, expectGood, expectSense, fieldPointer, makeDevice, run, u16, u32 } from './scsi-helpers.js';

const CONFLICT = 0x18;
const TARGET = 'iqn.2024-01.test:target';

/** An iSCSI I_T nexus as the transport builds it. */
function nx(name: string, isid = '23d000000001', tpgt = 1): ItNexus {
  return nexus(name, false, { isid, tpgt, target: TARGET });
}
const A = nx('a');
const B = nx('b');
const C = nx('c');

const Type = { WE: 1, EA: 3, WE_RO: 5, EA_RO: 6, WE_AR: 7, EA_AR: 8 } as const;

function params(key: bigint, saKey: bigint, flags = 0): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(key, 0);
  b.writeBigUInt64BE(saKey, 8);
  b[20] = flags;
  return b;
}
const prout = (sa: number, type = 0, len = 24, scope = 0) => cdb([0x5f, sa, (scope << 4) | type, 0, 0, ...u32(len), 0]);
const prin = (sa: number, alloc = 4096) => cdb([0x5e, sa, 0, 0, 0, 0, 0, ...u16(alloc), 0]);
const read10 = (lba = 0) => cdb([0x28, 0, ...u32(lba), 0, 0, 1, 0]);
const write10 = (lba = 0) => cdb([0x2a, 0, ...u32(lba), 0, 0, 1, 0]);

type Dev = ScsiDevice;
const out = (dev: Dev, n: ItNexus, sa: number, p: Buffer, type = 0) => run(dev, prout(sa, type, p.length), { nx: n, dataOut: p });
const register = (dev: Dev, n: ItNexus, key: bigint, flags = 0) => out(dev, n, 6, params(0n, key, flags));
const reserve = (dev: Dev, n: ItNexus, key: bigint, type: number) => out(dev, n, 1, params(key, 0n), type);
const release = (dev: Dev, n: ItNexus, key: bigint, type: number) => out(dev, n, 2, params(key, 0n), type);
const canRead = async (dev: Dev, n: ItNexus) => (await run(dev, read10(), { nx: n })).status === 0;
const canWrite = async (dev: Dev, n: ItNexus) => (await run(dev, write10(), { nx: n, dataOut: Buffer.alloc(512) })).status === 0;

async function ready(extra: Parameters<typeof makeDevice>[0] = {}) {
  const d = makeDevice({ blocks: 64, ...extra });
  for (const n of [A, B, C]) await clearUa(d.dev, n);
  return d;
}

function readKeys(r: ScsiResponse): { generation: number; keys: bigint[] } {
  const d = r.data!;
  const n = d.readUInt32BE(4) / 8;
  return { generation: d.readUInt32BE(0), keys: Array.from({ length: n }, (_, i) => d.readBigUInt64BE(8 + 8 * i)) };
}
function readReservation(r: ScsiResponse): { key: bigint; type: number } | null {
  const d = r.data!;
  if (d.readUInt32BE(4) === 0) return null;
  return { key: d.readBigUInt64BE(8), type: d[21]! & 0x0f };
}
async function pendingUa(dev: Dev, n: ItNexus): Promise<number | undefined> {
  const r = await run(dev, cdb([0x03, 0, 0, 0, 18, 0]), { nx: n });
  return r.data![2] === 6 ? (r.data![12]! << 8) | r.data![13]! : undefined;
}

describe('PERSISTENT RESERVE OUT: registration', () => {
  it('REGISTER / REGISTER AND IGNORE EXISTING KEY / unregister, with generations', async () => {
    const { dev } = await ready();
    expectGood(await out(dev, A, 0, params(0n, 0x11n)));
    expectGood(await register(dev, B, 0x22n));
    let k = readKeys(await run(dev, prin(0), { nx: A }));
    expect(k.keys).toEqual([0x11n, 0x22n]);
    expect(k.generation).toBe(2);
    // Changing a key needs the current one (REGISTER) or ignores it (REGISTER AND IGNORE).
    expect((await out(dev, A, 0, params(0x99n, 0x12n))).status).toBe(CONFLICT);
    expectGood(await out(dev, A, 0, params(0x11n, 0x12n)));
    expectGood(await register(dev, B, 0x23n));
    // Unregister with SERVICE ACTION RESERVATION KEY 0.
    expectGood(await out(dev, A, 0, params(0x12n, 0n)));
    k = readKeys(await run(dev, prin(0), { nx: A }));
    expect(k.keys).toEqual([0x23n]);
    expect(k.generation).toBe(5);
  });

  it('an unregistered nexus: REGISTER with a nonzero key conflicts; with both keys 0 it is a no-op', async () => {
    const { dev } = await ready();
    expect((await out(dev, A, 0, params(0x5n, 0x6n))).status).toBe(CONFLICT);
    expectGood(await out(dev, A, 0, params(0n, 0n)));
    expect(readKeys(await run(dev, prin(0), { nx: A }))).toEqual({ generation: 0, keys: [] });
  });

  it('parameter list and CDB checks', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, prout(0, 0, 20), { nx: A, dataOut: Buffer.alloc(20) }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
    expectSense(await run(dev, prout(0, 0, 28), { nx: A, dataOut: Buffer.alloc(28) }), KEY.ILLEGAL_REQUEST, 0x1a, 0x00);
    expectSense(await run(dev, prout(0, 0, 24), { nx: A, dataOut: Buffer.alloc(10) }), KEY.ILLEGAL_REQUEST, 0x0e, 0x03);
    // SPEC_I_PT is not supported (SIP_C = 0).
    const s = expectSense(await register(dev, A, 1n, 0x08), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
    expect(fieldPointer(s)).toEqual({ cd: false, byte: 20, bit: 3 });
    // Unknown service actions, bad scope / type.
    expectSense(await run(dev, prout(8), { nx: A, dataOut: params(0n, 1n) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectGood(await register(dev, A, 1n));
    expectSense(await run(dev, prout(1, 2), { nx: A, dataOut: params(1n, 0n) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, prout(1, 1, 24, 1), { nx: A, dataOut: params(1n, 0n) }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, prin(4), { nx: A }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, prin(0x1f), { nx: A }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });

  it('ALL_TG_PT registers the initiator port through every target port', async () => {
    const { dev } = await ready();
    const aOther = nx('a', '23d000000001', 2);
    await clearUa(dev, aOther);
    expectGood(await register(dev, A, 0x7n, 0x04));
    expectGood(await reserve(dev, aOther, 0x7n, Type.EA));
    expect(await canWrite(dev, A)).toBe(true);
    expect(await canWrite(dev, B)).toBe(false);
    const full = (await run(dev, prin(3), { nx: A })).data!;
    expect(full[8 + 12]! & 0x02).toBe(0x02); // ALL_TG_PT
  });
});

describe('PERSISTENT RESERVE OUT: reservations and access', () => {
  // [type, registered other can read, can write, unregistered other can read, can write]
  const matrix: [keyof typeof Type, boolean, boolean, boolean, boolean][] = [
    ['WE', true, false, true, false],
    ['EA', false, false, false, false],
    ['WE_RO', true, true, true, false],
    ['EA_RO', true, true, false, false],
    ['WE_AR', true, true, true, false],
    ['EA_AR', true, true, false, false],
  ];
  for (const [name, regRead, regWrite, unregRead, unregWrite] of matrix) {
    it(`${name}: holder has full access; others per SPC-4 §5.13.1`, async () => {
      const { dev } = await ready();
      expectGood(await register(dev, A, 0xan));
      expectGood(await register(dev, B, 0xbn));
      expectGood(await reserve(dev, A, 0xan, Type[name]));
      const rr = readReservation(await run(dev, prin(1), { nx: B }));
      expect(rr).toEqual({ key: name.endsWith('AR') ? 0n : 0xan, type: Type[name] });
      expect(await canRead(dev, A)).toBe(true);
      expect(await canWrite(dev, A)).toBe(true);
      expect(await canRead(dev, B)).toBe(regRead);
      expect(await canWrite(dev, B)).toBe(regWrite);
      expect(await canRead(dev, C)).toBe(unregRead);
      expect(await canWrite(dev, C)).toBe(unregWrite);
      // Always allowed: INQUIRY, REPORT LUNS, PRIN, TEST UNIT READY, READ CAPACITY.
      for (const c of [cdb([0x12, 0, 0, 0, 36, 0]), cdb([0xa0, 0, 0, 0, 0, 0, ...u32(64), 0, 0]), prin(0), cdb([0x00]), cdb([0x25])]) {
        expectGood(await run(dev, c, { nx: C }));
      }
      // MODE SENSE reads, MODE SELECT / SYNCHRONIZE CACHE write.
      expect((await run(dev, cdb([0x1a, 0, 0x3f, 0, 255, 0]), { nx: C })).status === 0).toBe(unregRead);
      expect((await run(dev, cdb([0x35]), { nx: C })).status).toBe(CONFLICT);
      expectGood(await release(dev, A, 0xan, Type[name]));
      expect(await canWrite(dev, C)).toBe(true);
    });
  }

  it('RESERVE: not registered or wrong key conflicts; the holder may repeat it; another type conflicts', async () => {
    const { dev } = await ready();
    expect((await reserve(dev, A, 1n, Type.WE)).status).toBe(CONFLICT);
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expect((await reserve(dev, A, 9n, Type.WE)).status).toBe(CONFLICT);
    expectGood(await reserve(dev, A, 1n, Type.WE));
    expectGood(await reserve(dev, A, 1n, Type.WE));
    expect((await reserve(dev, A, 1n, Type.EA)).status).toBe(CONFLICT);
    expect((await reserve(dev, B, 2n, Type.WE)).status).toBe(CONFLICT);
    // RESERVE and RELEASE do not change the generation.
    expect(readKeys(await run(dev, prin(0), { nx: A })).generation).toBe(2);
  });

  it('RELEASE: a non-holder is a no-op; the wrong type is INVALID RELEASE; RO/AR types tell the other registrants', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await release(dev, A, 1n, Type.WE)); // nothing reserved
    expectGood(await reserve(dev, A, 1n, Type.WE_RO));
    expectGood(await release(dev, B, 2n, Type.WE_RO)); // not the holder
    expect(readReservation(await run(dev, prin(1), { nx: A }))).not.toBeNull();
    expectSense(await release(dev, A, 1n, Type.WE), KEY.ILLEGAL_REQUEST, 0x26, 0x04);
    expect((await release(dev, C, 0n, Type.WE_RO)).status).toBe(CONFLICT);
    expectGood(await release(dev, A, 1n, Type.WE_RO));
    expect(await pendingUa(dev, B)).toBe(0x2a04);
    expect(await pendingUa(dev, A)).toBeUndefined();
    expect(await pendingUa(dev, C)).toBeUndefined();
  });

  it('releasing a WE / EA reservation establishes no unit attention', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await reserve(dev, A, 1n, Type.EA));
    expectGood(await release(dev, A, 1n, Type.EA));
    expect(await pendingUa(dev, B)).toBeUndefined();
  });

  it('unregistering the holder releases the reservation (RO: RESERVATIONS RELEASED to the others, not to it)', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await reserve(dev, A, 1n, Type.EA_RO));
    expectGood(await out(dev, A, 0, params(1n, 0n)));
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toBeNull();
    expect(await pendingUa(dev, A)).toBeUndefined();
    expect(await pendingUa(dev, B)).toBe(0x2a04);
  });

  it('all-registrants: the reservation survives its creator unregistering, until the last registrant goes', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await reserve(dev, A, 1n, Type.WE_AR));
    expectGood(await out(dev, A, 0, params(1n, 0n)));
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toEqual({ key: 0n, type: Type.WE_AR });
    expect(await canWrite(dev, B)).toBe(true);
    expect(await canWrite(dev, A)).toBe(false);
    expectGood(await out(dev, B, 0, params(2n, 0n)));
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toBeNull();
  });

  it('CLEAR removes everything and preempts the other registrants', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await reserve(dev, B, 2n, Type.WE));
    expect((await out(dev, C, 3, params(0n, 0n))).status).toBe(CONFLICT);
    expect((await out(dev, A, 3, params(5n, 0n))).status).toBe(CONFLICT);
    expectGood(await out(dev, A, 3, params(1n, 0n)));
    expect(readKeys(await run(dev, prin(0), { nx: A })).keys).toEqual([]);
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toBeNull();
    expect(await pendingUa(dev, B)).toBe(0x2a03);
    expect(await pendingUa(dev, A)).toBeUndefined();
  });
});

describe('PREEMPT / PREEMPT AND ABORT / REGISTER AND MOVE', () => {
  it('PREEMPT without a reservation removes the registrations holding the key', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await out(dev, A, 4, params(1n, 2n), Type.WE));
    expect(readKeys(await run(dev, prin(0), { nx: A })).keys).toEqual([1n]);
    expect(await pendingUa(dev, B)).toBe(0x2a05);
    // No such key: conflict; key 0 without an all-registrants reservation: invalid.
    expect((await out(dev, A, 4, params(1n, 9n), Type.WE)).status).toBe(CONFLICT);
    expectSense(await out(dev, A, 4, params(1n, 0n), Type.WE), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
  });

  it('PREEMPT of the holder moves the reservation to the preempter; a type change tells the rest', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await register(dev, C, 3n));
    expectGood(await reserve(dev, B, 2n, Type.WE));
    expectGood(await out(dev, A, 4, params(1n, 2n), Type.EA));
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toEqual({ key: 1n, type: Type.EA });
    expect(readKeys(await run(dev, prin(0), { nx: A })).keys).toEqual([1n, 3n]);
    expect(await pendingUa(dev, B)).toBe(0x2a05);
    expect(await pendingUa(dev, C)).toBe(0x2a04);
    expect(await canWrite(dev, C)).toBe(false);
  });

  it('PREEMPT with key 0 under an all-registrants reservation removes every other registrant', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await reserve(dev, B, 2n, Type.EA_AR));
    expectGood(await out(dev, A, 4, params(1n, 0n), Type.WE));
    expect(readKeys(await run(dev, prin(0), { nx: A })).keys).toEqual([1n]);
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toEqual({ key: 1n, type: Type.WE });
  });

  it('PREEMPT AND ABORT ends the preempted nexus\' tasks with TASK ABORTED, and only theirs', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await reserve(dev, B, 2n, Type.WE));
    const abortedB = vi.fn();
    const abortedC = vi.fn();
    const taskB = dev.createTask(B, 0, write10(), abortedB);
    const taskC = dev.createTask(C, 0, write10(), abortedC);
    expectGood(await out(dev, A, 5, params(1n, 2n), Type.WE));
    expect(abortedB).toHaveBeenCalledWith(true);
    expect(taskB.aborted).toBe(true);
    expect(abortedC).not.toHaveBeenCalled();
    expect(taskC.state).toBe('pending');
    expect(dev.tasks.size).toBe(1);
  });

  it('REGISTER AND MOVE hands the reservation to another initiator port (optionally unregistering)', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await reserve(dev, A, 1n, Type.WE));
    const tid = encodeIscsiTransportId(B.initiatorPort);
    const p = Buffer.alloc(24 + tid.length);
    p.writeBigUInt64BE(1n, 0);
    p.writeBigUInt64BE(0xbn, 8);
    p[17] = 0x02; // UNREG
    p.writeUInt16BE(1, 18); // relative target port 1 (TPGT 1)
    p.writeUInt32BE(tid.length, 20);
    tid.copy(p, 24);
    expectGood(await run(dev, prout(7, 0, p.length), { nx: A, dataOut: p }));
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toEqual({ key: 0xbn, type: Type.WE });
    expect(readKeys(await run(dev, prin(0), { nx: A })).keys).toEqual([0xbn]);
    expect(await canWrite(dev, B)).toBe(true);
    expect(await canWrite(dev, A)).toBe(false);
    // B may not move it to itself; a wrong relative port is invalid.
    const self = Buffer.from(p);
    self.writeBigUInt64BE(0xbn, 0);
    expectSense(await run(dev, prout(7, 0, self.length), { nx: B, dataOut: self }), KEY.ILLEGAL_REQUEST, 0x26, 0x00);
  });

  it('TransportIDs round-trip (iSCSI, format 01b)', () => {
    const port = A.initiatorPort;
    const t = encodeIscsiTransportId(port);
    expect(t.length % 4).toBe(0);
    expect(parseIscsiTransportId(t)).toEqual({ initiatorPort: port, length: t.length });
    const bad = Buffer.from(t);
    bad[0] = 0x05; // format 00b
    expect(parseIscsiTransportId(bad)).toEqual({ error: 'format' });
  });
});

describe('PERSISTENT RESERVE IN', () => {
  it('REPORT CAPABILITIES: CRH, ATP_C, PTPL_C, the type mask, PTPL_A following APTPL', async () => {
    const { dev } = await ready();
    let d = (await run(dev, prin(2), { nx: A })).data!;
    expect(d.readUInt16BE(0)).toBe(8);
    expect(d[2]).toBe(0x15);
    expect(d[3]).toBe(0x80);
    expect(d.readUInt16BE(4)).toBe(0xea01);
    expectGood(await register(dev, A, 1n, 0x01));
    d = (await run(dev, prin(2), { nx: A })).data!;
    expect(d[3]! & 0x01).toBe(1);
  });

  it('READ FULL STATUS describes each registration with its TransportID and holder flag', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expectGood(await register(dev, B, 2n));
    expectGood(await reserve(dev, B, 2n, Type.WE_RO));
    const d = (await run(dev, prin(3), { nx: A })).data!;
    expect(d.readUInt32BE(0)).toBe(2); // generation
    let o = 8;
    const seen: { key: bigint; holder: boolean; type: number; rtpi: number; port: string }[] = [];
    while (o < 8 + d.readUInt32BE(4)) {
      const len = d.readUInt32BE(o + 20);
      const tid = parseIscsiTransportId(d.subarray(o + 24, o + 24 + len));
      seen.push({ key: d.readBigUInt64BE(o), holder: (d[o + 12]! & 1) === 1, type: d[o + 13]! & 0x0f, rtpi: d.readUInt16BE(o + 18), port: 'initiatorPort' in tid ? tid.initiatorPort : '?' });
      o += 24 + len;
    }
    expect(seen).toEqual([
      { key: 1n, holder: false, type: 0, rtpi: 1, port: A.initiatorPort },
      { key: 2n, holder: true, type: Type.WE_RO, rtpi: 1, port: B.initiatorPort },
    ]);
  });

  it('truncates to the allocation length but reports the full ADDITIONAL LENGTH', async () => {
    const { dev } = await ready();
    for (const [n, k] of [[A, 1n], [B, 2n], [C, 3n]] as const) expectGood(await register(dev, n, k));
    const d = (await run(dev, prin(0, 12), { nx: A })).data!;
    expect(d.length).toBe(12);
    expect(d.readUInt32BE(4)).toBe(24);
  });
});

describe('APTPL: persistent reservations survive a restart', () => {
  function relu(mem: MemoryBackend): { dev: ScsiDevice; lu: LogicalUnit } {
    const lu = new LogicalUnit({
      lun: 0, backend: mem, blockSize: 512, readOnly: false, writeCache: true, serial: 'S', naa: '6001405abcdef0123456789abcdef012',
      vendor: 'GLFS', product: 'p', revision: '1', targetName: TARGET,
    });
    return { dev: new ScsiDevice([lu]), lu };
  }

  it('with APTPL = 1 every change is written to the sidecar before GOOD, and read back at start', async () => {
    const mem = new MemoryBackend(64 * 512);
    const first = relu(mem);
    for (const n of [A, B]) await clearUa(first.dev, n);
    expectGood(await register(first.dev, A, 0xan, 0x01));
    expectGood(await register(first.dev, B, 0xbn, 0x01));
    expectGood(await reserve(first.dev, A, 0xan, Type.EA_RO));
    const saved = JSON.parse(mem.sidecars.get(PR_SIDECAR)!.toString('utf8'));
    expect(saved.reservation).toEqual({ type: Type.EA_RO, holder: 0 });

    const second = relu(mem);
    await second.dev.opened();
    for (const n of [A, B, C]) await clearUa(second.dev, n);
    expect(readKeys(await run(second.dev, prin(0), { nx: C }))).toEqual({ generation: 2, keys: [0xan, 0xbn] });
    expect(readReservation(await run(second.dev, prin(1), { nx: C }))).toEqual({ key: 0xan, type: Type.EA_RO });
    expect(await canWrite(second.dev, C)).toBe(false);
    expect(await canWrite(second.dev, B)).toBe(true);
  });

  it('APTPL = 0 removes the persisted state; without APTPL nothing survives', async () => {
    const mem = new MemoryBackend(64 * 512);
    const first = relu(mem);
    for (const n of [A, B]) await clearUa(first.dev, n);
    expectGood(await register(first.dev, A, 1n, 0x01));
    expect(mem.sidecars.has(PR_SIDECAR)).toBe(true);
    expectGood(await register(first.dev, B, 2n));
    expect(mem.sidecars.has(PR_SIDECAR)).toBe(false);
    const second = relu(mem);
    await clearUa(second.dev, C);
    expect(readKeys(await run(second.dev, prin(0), { nx: C })).keys).toEqual([]);
  });

  it('a change that cannot be persisted is not made', async () => {
    const mem = new MemoryBackend(64 * 512);
    const { dev } = relu(mem);
    await clearUa(dev, A);
    await clearUa(dev, B);
    expectGood(await register(dev, A, 1n, 0x01));
    mem.failNext('sidecar', 'EIO');
    expectSense(await reserve(dev, A, 1n, Type.WE), KEY.HARDWARE_ERROR, 0x44, 0x00);
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toBeNull();
    mem.failNext('sidecar', 'ENOSPC');
    expectSense(await register(dev, B, 2n, 0x01), KEY.ILLEGAL_REQUEST, 0x55, 0x04);
  });

  it('an unreadable persisted state makes the LU NOT READY (no silent loss of fencing)', async () => {
    const mem = new MemoryBackend(64 * 512);
    mem.sidecars.set(PR_SIDECAR, Buffer.from('{ not json'));
    const { dev } = relu(mem);
    await expect(dev.opened()).rejects.toThrow(/persisted reservation state/);
    expectSense(await run(dev, read10(), { nx: A }), 0x02, 0x04, 0x03);
    expectGood(await run(dev, cdb([0x12, 0, 0, 0, 36, 0]), { nx: A }));
  });
});

describe('SPC-2 RESERVE / RELEASE', () => {
  const reserve6 = cdb([0x16]);
  const release6 = cdb([0x17]);
  const reserve10 = cdb([0x56]);
  const release10 = cdb([0x57]);

  it('reserves the LU for one nexus; others conflict except INQUIRY / REPORT LUNS / REQUEST SENSE / RELEASE', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, reserve6, { nx: A }));
    expectGood(await run(dev, reserve6, { nx: A }));
    expect((await run(dev, reserve10, { nx: B })).status).toBe(CONFLICT);
    expectGood(await run(dev, release6, { nx: B })); // no-op
    expect(await canRead(dev, B)).toBe(false);
    expect((await run(dev, cdb([0x1a, 0, 0x3f, 0, 255, 0]), { nx: B })).status).toBe(CONFLICT);
    expect((await run(dev, cdb([0x00]), { nx: B })).status).toBe(CONFLICT);
    expectGood(await run(dev, cdb([0x12, 0, 0, 0, 36, 0]), { nx: B }));
    expectGood(await run(dev, cdb([0x03, 0, 0, 0, 18, 0]), { nx: B }));
    expect(await canWrite(dev, A)).toBe(true);
    expectGood(await run(dev, release10, { nx: A }));
    expectGood(await run(dev, reserve10, { nx: B }));
    expect(await canWrite(dev, A)).toBe(false);
  });

  it('PERSISTENT RESERVE IN/OUT conflict under a RESERVE, even from its holder', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, reserve6, { nx: A }));
    expect((await run(dev, prin(0), { nx: A })).status).toBe(CONFLICT);
    expect((await register(dev, A, 1n)).status).toBe(CONFLICT);
  });

  it('with registrations, RESERVE/RELEASE conflict except for the PR holder (CRH = 1: GOOD, no effect)', async () => {
    const { dev } = await ready();
    expectGood(await register(dev, A, 1n));
    expect((await run(dev, reserve6, { nx: B })).status).toBe(CONFLICT);
    expect((await run(dev, reserve6, { nx: A })).status).toBe(CONFLICT); // registered, nothing reserved
    expectGood(await reserve(dev, A, 1n, Type.WE_RO));
    expectGood(await run(dev, reserve6, { nx: A }));
    expectGood(await run(dev, release6, { nx: A }));
    expect(readReservation(await run(dev, prin(1), { nx: A }))).toEqual({ key: 1n, type: Type.WE_RO });
    expect(await canRead(dev, B)).toBe(true); // no SPC-2 reservation was made
  });

  it('LU reset, target reset and I_T nexus loss end it; persistent reservations stay', async () => {
    const { dev } = await ready();
    expectGood(await run(dev, reserve6, { nx: A }));
    await dev.resetLogicalUnit(B, 0);
    for (const n of [A, B]) await clearUa(dev, n);
    expectGood(await run(dev, reserve6, { nx: B }));
    await dev.resetTarget(A);
    for (const n of [A, B]) await clearUa(dev, n);
    expectGood(await run(dev, reserve6, { nx: A }));
    await dev.nexusLost(A);
    expect(await pendingUa(dev, A)).toBe(0x2907);
    expectGood(await run(dev, reserve6, { nx: B }));
    expectGood(await run(dev, release6, { nx: B }));

    expectGood(await register(dev, A, 1n));
    expectGood(await reserve(dev, A, 1n, Type.EA));
    await dev.resetLogicalUnit(B, 0);
    await dev.nexusLost(A);
    for (const n of [A, B]) await clearUa(dev, n);
    expect(readReservation(await run(dev, prin(1), { nx: B }))).toEqual({ key: 1n, type: Type.EA });
  });

  it('third-party and extent reservations are not supported', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, cdb([0x16, 0x10]), { nx: A }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
    expectSense(await run(dev, cdb([0x56, 0x01]), { nx: A }), KEY.ILLEGAL_REQUEST, 0x24, 0x00);
  });
});

describe('reservations and REPORT SUPPORTED OPERATION CODES', () => {
  it('lists every PR service action, RESERVE/RELEASE and the new SBC commands', async () => {
    const { dev } = await ready();
    const d = (await run(dev, cdb([0xa3, 0x0c, 0, 0, 0, 0, ...u32(8192), 0, 0]), { nx: A })).data!;
    const seen = new Set<string>();
    for (let o = 4; o < 4 + d.readUInt32BE(0); o += 8) seen.add(`${d[o]!.toString(16)}/${d[o + 5]! & 1 ? d.readUInt16BE(o + 2) : '-'}`);
    for (const k of ['5e/0', '5e/3', '5f/0', '5f/7', '16/-', '17/-', '56/-', '57/-', '41/-', '42/-', '93/-', '9e/18', '89/-', '8b/-', '2e/-', 'ae/-', '8e/-', '34/-', '90/-', '37/-', 'b7/-']) {
      expect(seen.has(k), k).toBe(true);
    }
    expect(seen.has('5e/4')).toBe(false);
  });
});
