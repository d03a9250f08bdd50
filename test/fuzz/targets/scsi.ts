/**
 * The CDB decoders: ScsiDevice.execute (src/scsi/scsi-device.ts) on a fresh memory-backed LU per
 * input, fed arbitrary CDBs and data-out from two nexuses (so reservations and unit attentions
 * come into play), on LUN 0 or on a LUN without a logical unit.
 * Input: up to 6 commands, each [nexus (bit0) | no-LU LUN (bit1) | CDB length: 6/10/12/16/32
 * (bits 4-6)][dataInLength: 2][data-out length: 2][CDB][data-out].
 * Properties: every call resolves (no rejection, no hang) with a SAM-5 status; CHECK CONDITION
 * carries 18 bytes of fixed-format sense (SPC-4 §4.5.3); media data-in never exceeds
 * dataInLength. Parameter data (INQUIRY, MODE SENSE, …) may: the transport sends at most
 * dataInLength and reports the overflow (ScsiResponse.data), but it stays under 64 KiB whatever
 * the CDB's allocation length says.
 */
import { MemoryBackend } from '../../../src/backend/memory-backend.js';
import { LogicalUnit } from '../../../src/scsi/logical-unit.js';
import { createNexus, type ItNexus } from '../../../src/scsi/nexus.js';
import { ScsiDevice } from '../../../src/scsi/scsi-device.js';
import { encodeIscsiTransportId } from '../../../src/scsi/transport-id.js';
import type { FuzzTarget } from '../engine/fuzz-target.js';

const TARGET = 'iqn.2024-01.fuzz:target';
const BLOCKS = 64;
const CDB_LENGTHS = [6, 10, 12, 16, 32, 6, 10, 16];
/** Largest parameter data a command may build beyond dataInLength. */
const MAX_PARAMETER_DATA = 65536;
/** GOOD, CHECK CONDITION, CONDITION MET, BUSY, RESERVATION CONFLICT, TASK SET FULL, TASK ABORTED (SAM-5 §5.3). */
const STATUSES = new Set([0x00, 0x02, 0x04, 0x08, 0x18, 0x28, 0x40]);

function nexus(name: string, isid: string): ItNexus {
  const initiatorName = `iqn.2024-01.fuzz:${name}`;
  const initiatorPort = `${initiatorName},i,0x${isid}`;
  return createNexus({
    initiatorName, initiatorPort, transportId: encodeIscsiTransportId(initiatorPort),
    targetPort: { name: `${TARGET},t,0x0001`, relativeId: 1, groupId: 1 }, readOnly: false,
  });
}
const NEXUSES = [nexus('a', '23d000000001'), nexus('b', '23d000000002')];

function device(): ScsiDevice {
  const lu = new LogicalUnit({
    lun: 0, backend: new MemoryBackend(BLOCKS * 512), blockSize: 512, readOnly: false, writeCache: true, serial: 'FUZZ',
    naa: '6001405abcdef0123456789abcdef012', vendor: 'GLFS', product: 'glfs-target', revision: '0.1', targetName: TARGET,
  });
  return new ScsiDevice([lu]);
}

function command(selector: number, cdb: number[], dataInLength: number, dataOut: Buffer = Buffer.alloc(0)): Buffer {
  const length = CDB_LENGTHS[(selector >> 4) & 7]!;
  const head = Buffer.from([selector, dataInLength >> 8, dataInLength & 0xff, dataOut.length >> 8, dataOut.length & 0xff]);
  return Buffer.concat([head, Buffer.from([...cdb, ...new Array<number>(length - cdb.length).fill(0)]), dataOut]);
}

const BLOCK = Buffer.alloc(512, 0x5a);
const prOutParameters = Buffer.alloc(24);
prOutParameters.writeUInt32BE(0xabcd, 4); // reservation key
prOutParameters.writeUInt32BE(0xabcd, 12); // service action key

export const target: FuzzTarget = {
  name: 'scsi',
  maxLength: 8192,
  seeds: [
    Buffer.concat([command(0x00, [0x00], 0), command(0x00, [0x12, 0, 0, 0, 0xff], 255), command(0x10, [0x25], 8)]),
    Buffer.concat([command(0x10, [0x2a, 0, 0, 0, 0, 1, 0, 0, 1], 0, BLOCK), command(0x10, [0x28, 0, 0, 0, 0, 1, 0, 0, 1], 512)]),
    Buffer.concat([command(0x30, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32], 32), command(0x30, [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 1024)]),
    Buffer.concat([command(0x10, [0x5f, 0x06, 0, 0, 0, 0, 0, 0, 24], 0, prOutParameters), command(0x11, [0x5e, 0x00, 0, 0, 0, 0, 0, 0x10, 0], 4096)]),
    Buffer.concat([command(0x00, [0x1a, 0, 0x3f, 0, 0xff], 255), command(0x10, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0], 4096), command(0x02, [0x12, 0x01, 0x83, 0, 0xff], 255)]),
    Buffer.concat([command(0x30, [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8], 0, BLOCK), command(0x10, [0x35], 0), command(0x20, [0xa3, 0x0c, 0x02, 0, 0, 0, 0, 0, 0x10, 0], 4096)]),
  ],
  async run(input) {
    const dev = device();
    let at = 0;
    for (let n = 0; n < 6 && at + 5 <= input.length; n++) {
      const selector = input[at]!;
      const dataInLength = input.readUInt16BE(at + 1);
      const cdbLength = CDB_LENGTHS[(selector >> 4) & 7]!;
      const cdb = input.subarray(at + 5, at + 5 + cdbLength);
      const dataOut = input.subarray(at + 5 + cdbLength, at + 5 + cdbLength + input.readUInt16BE(at + 3));
      at += 5 + cdbLength + dataOut.length;
      if (cdb.length < 6) return;
      const r = await dev.execute({
        nexus: NEXUSES[selector & 1]!, lun: (selector & 2) !== 0 ? 1 : 0, cdb: Buffer.from(cdb),
        ...(dataOut.length > 0 ? { dataOut: Buffer.from(dataOut) } : {}), dataInLength,
      });
      const what = `CDB ${cdb.toString('hex')}`;
      if (!STATUSES.has(r.status)) throw new Error(`${what}: status 0x${r.status.toString(16)}`);
      if (r.status === 0x02) {
        const s = r.sense;
        if (s === undefined || s.length !== 18 || (s[0]! & 0x7f) !== 0x70 || s[7] !== 10) {
          throw new Error(`${what}: CHECK CONDITION with sense ${s?.toString('hex') ?? 'missing'}`);
        }
      }
      if ((r.data?.length ?? 0) > Math.max(dataInLength, MAX_PARAMETER_DATA)) throw new Error(`${what}: ${r.data!.length} bytes of data-in for dataInLength ${dataInLength}`);
    }
  },
};
