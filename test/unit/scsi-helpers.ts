// Shared helpers for the scsi-*.test.ts unit tests (not a test file itself).
import { expect } from 'vitest';
import type { BlockBackend } from '../../src/backend/block-backend.js';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import { LogicalUnit, type LogicalUnitOptions } from '../../src/scsi/logical-unit.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { createNexus, type ItNexus } from '../../src/scsi/nexus.js';
import { encodeIscsiTransportId } from '../../src/scsi/transport-id.js';
import type { ScsiResponse } from '../../src/scsi/types.js';

export const GOOD = 0x00;
export const CHECK_CONDITION = 0x02;

/** An iSCSI I_T nexus: initiator iqn.2024-01.test:<name> with `isid`, through target port `tpgt` of `target`. */
export function nexus(name = 'a', readOnly = false, o: { isid?: string; tpgt?: number; target?: string } = {}): ItNexus {
  const initiatorName = `iqn.2024-01.test:${name}`;
  const initiatorPort = `${initiatorName},i,0x${o.isid ?? '23d000000001'}`;
  const tpgt = o.tpgt ?? 1;
  return createNexus({
    initiatorName,
    initiatorPort,
    transportId: encodeIscsiTransportId(initiatorPort),
    targetPort: { name: `${o.target ?? 'iqn.2024-01.test:target'},t,0x${tpgt.toString(16).padStart(4, '0')}`, relativeId: tpgt, groupId: tpgt },
    readOnly,
  });
}

export interface TestLuOptions extends Partial<Omit<LogicalUnitOptions, 'backend'>> {
  blocks?: number;
  backend?: BlockBackend;
}

export function makeLu(o: TestLuOptions = {}): { lu: LogicalUnit; mem: MemoryBackend } {
  const blockSize = o.blockSize ?? 512;
  const mem = new MemoryBackend((o.blocks ?? 64) * blockSize);
  const lu = new LogicalUnit({
    lun: o.lun ?? 0,
    backend: o.backend ?? mem,
    blockSize,
    readOnly: o.readOnly ?? false,
    writeCache: o.writeCache ?? true,
    serial: o.serial ?? 'SER0001',
    naa: o.naa ?? '6001405abcdef0123456789abcdef012',
    vendor: o.vendor ?? 'GLFS',
    product: o.product ?? 'glfs-target',
    revision: o.revision ?? '0.1',
    targetName: o.targetName ?? 'iqn.2024-01.test:target',
    ...(o.targetPortalGroupTag !== undefined ? { targetPortalGroupTag: o.targetPortalGroupTag } : {}),
    ...(o.reservationStore !== undefined ? { reservationStore: o.reservationStore } : {}),
    ...(o.callBounds !== undefined ? { callBounds: o.callBounds } : {}),
    ...(o.alua !== undefined ? { alua: o.alua } : {}),
  });
  return { lu, mem };
}

export function makeDevice(o: TestLuOptions = {}): { dev: ScsiDevice; lu: LogicalUnit; mem: MemoryBackend } {
  const { lu, mem } = makeLu(o);
  return { dev: new ScsiDevice([lu]), lu, mem };
}

/** CDB from bytes, zero-padded to `len` (default: the length the opcode's group implies, min 6). */
export function cdb(bytes: number[], len?: number): Buffer {
  const op = bytes[0] ?? 0;
  const group = op >> 5;
  const n = len ?? (group === 0 ? 6 : group === 4 ? 16 : group === 5 ? 12 : 10);
  const b = Buffer.alloc(Math.max(n, bytes.length));
  Buffer.from(bytes).copy(b);
  return b;
}

export interface RunOptions {
  lun?: number;
  nx?: ItNexus;
  dataOut?: Buffer;
  dataInLength?: number;
}

export function run(dev: ScsiDevice, c: Buffer, o: RunOptions = {}): Promise<ScsiResponse> {
  return dev.execute({
    nexus: o.nx ?? nexus(),
    lun: o.lun ?? 0,
    cdb: c,
    ...(o.dataOut ? { dataOut: o.dataOut } : {}),
    dataInLength: o.dataInLength ?? 1 << 24,
  });
}

/** Consume the power-on unit attention for a nexus. */
export async function clearUa(dev: ScsiDevice, nx: ItNexus = nexus(), lun = 0): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const r = await run(dev, cdb([0x00]), { nx, lun });
    if (r.status === GOOD) return;
  }
  throw new Error('unit attention did not clear');
}

export function expectGood(r: ScsiResponse): void {
  if (r.status !== GOOD) {
    const s = r.sense;
    throw new Error(
      `expected GOOD, got status ${r.status}` +
        (s ? ` sense ${s[2]!.toString(16)}/${s[12]!.toString(16)}/${s[13]!.toString(16)}` : ''),
    );
  }
}

export function expectSense(r: ScsiResponse, key: number, asc: number, ascq: number): Buffer {
  expect(r.status).toBe(CHECK_CONDITION);
  const s = r.sense!;
  expect(s).toBeDefined();
  expect(s[0]! & 0x7f).toBe(0x70);
  expect(s[7]).toBe(10);
  expect({ key: s[2]! & 0x0f, asc: s[12], ascq: s[13] }).toEqual({ key, asc, ascq });
  return s;
}

/** SKSV field pointer of fixed sense: [cd, byte, bit | undefined]. */
export function fieldPointer(s: Buffer): { cd: boolean; byte: number; bit?: number } | undefined {
  if (!(s[15]! & 0x80)) return undefined;
  const bpv = (s[15]! & 0x08) !== 0;
  return bpv
    ? { cd: (s[15]! & 0x40) !== 0, byte: s.readUInt16BE(16), bit: s[15]! & 7 }
    : { cd: (s[15]! & 0x40) !== 0, byte: s.readUInt16BE(16) };
}

export const KEY = { NO_SENSE: 0, NOT_READY: 2, MEDIUM_ERROR: 3, HARDWARE_ERROR: 4, ILLEGAL_REQUEST: 5, UNIT_ATTENTION: 6, DATA_PROTECT: 7, MISCOMPARE: 0x0e };

export function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
export function u16(n: number): number[] {
  return [(n >>> 8) & 0xff, n & 0xff];
}
export function u64(n: number): number[] {
  return [...u32(Math.floor(n / 2 ** 32)), ...u32(n >>> 0)];
}
