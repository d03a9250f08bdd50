// Logical units added to and removed from a running device, and a logical unit that grows
// (configuration reload): the unit attentions SPC-4 §6.33 and SBC-3 ask for, REPORT LUNS and
// READ CAPACITY as they change, and nothing for a nexus of another device.
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backend/memory-backend.js';
import type { BlockBackend } from '../../src/backend/block-backend.js';
import { ScsiDevice } from '../../src/scsi/scsi-device.js';
import { KEY, cdb, clearUa, expectGood, expectSense, makeLu, nexus, run, u32 } from './scsi-helpers.js';

/** A memory backend that can grow (the file backend's ftruncate, in memory). */
class GrowingBackend implements BlockBackend {
  readonly description = 'growing memory';
  private data: Buffer;
  constructor(size: number) {
    this.data = Buffer.alloc(size);
  }
  get sizeBytes(): number {
    return this.data.length;
  }
  async grow(sizeBytes: number): Promise<void> {
    this.data = Buffer.concat([this.data, Buffer.alloc(sizeBytes - this.data.length)]);
  }
  async read(buf: Buffer, offset: number): Promise<void> {
    this.data.copy(buf, 0, offset, offset + buf.length);
  }
  async write(data: Buffer | readonly Buffer[], offset: number): Promise<void> {
    Buffer.concat(Buffer.isBuffer(data) ? [data] : data).copy(this.data, offset);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

const reportLuns = cdb([0xa0, 0, 0, 0, 0, 0, ...u32(4096)]);
const lunsOf = (data: Buffer) => Array.from({ length: data.readUInt32BE(0) / 8 }, (_, i) => data.readUInt16BE(8 + i * 8) & 0x3fff);
const readCapacity10 = cdb([0x25]);

describe('a device whose logical units change', () => {
  it('adding and removing LUs reports REPORTED LUNS DATA HAS CHANGED; removed LUNs are not supported', async () => {
    const { lu } = makeLu({ lun: 0 });
    const dev = new ScsiDevice([lu]);
    const other = new ScsiDevice([makeLu({ lun: 0 }).lu]);
    const nx = nexus('a');
    const elsewhere = nexus('b');
    await clearUa(dev, nx);
    await clearUa(other, elsewhere);

    dev.addUnit(makeLu({ lun: 1, serial: 'SER0002', naa: '6001405abcdef0123456789abcdef013' }).lu);
    expectSense(await run(dev, cdb([0x00]), { nx }), KEY.UNIT_ATTENTION, 0x3f, 0x0e);
    expectGood(await run(dev, cdb([0x00]), { nx }));
    const listed = await run(dev, reportLuns, { nx, dataInLength: 4096 });
    expectGood(listed);
    expect(lunsOf(listed.data!)).toEqual([0, 1]);
    // The new LU: power-on first, as for any LU a nexus has not addressed yet.
    expectSense(await run(dev, cdb([0x00]), { nx, lun: 1 }), KEY.UNIT_ATTENTION, 0x29, 0x00);

    const removed = await dev.removeUnit(1);
    expect(removed?.lun).toBe(1);
    expectSense(await run(dev, cdb([0x00]), { nx, lun: 1 }), KEY.ILLEGAL_REQUEST, 0x25, 0x00);
    expectSense(await run(dev, cdb([0x00]), { nx }), KEY.UNIT_ATTENTION, 0x3f, 0x0e);
    expect(lunsOf((await run(dev, reportLuns, { nx, dataInLength: 4096 })).data!)).toEqual([0]);
    expect(await dev.removeUnit(1)).toBeUndefined();
    expect(() => dev.addUnit(makeLu({ lun: 0 }).lu)).toThrow(/duplicate LUN 0/);

    expectGood(await run(other, cdb([0x00]), { nx: elsewhere }));
  });

  it('a grown LU reports CAPACITY DATA HAS CHANGED and its new capacity; shrinking is refused', async () => {
    const backend = new GrowingBackend(64 * 512);
    const { lu } = makeLu({ lun: 0, backend });
    const dev = new ScsiDevice([lu]);
    const nx = nexus('a');
    await clearUa(dev, nx);

    await lu.grow(128 * 512);
    expectSense(await run(dev, cdb([0x00]), { nx }), KEY.UNIT_ATTENTION, 0x2a, 0x09);
    const cap = await run(dev, readCapacity10, { nx, dataInLength: 8 });
    expectGood(cap);
    expect(cap.data!.readUInt32BE(0)).toBe(127); // last LBA
    // The new blocks can be written and read back.
    expectGood(await run(dev, cdb([0x2a, 0, ...u32(120), 0, 0, 1]), { nx, dataOut: Buffer.alloc(512, 0x42) }));
    const back = await run(dev, cdb([0x28, 0, ...u32(120), 0, 0, 1]), { nx, dataInLength: 512 });
    expect(back.data!.every((b) => b === 0x42)).toBe(true);

    await expect(lu.grow(64 * 512)).rejects.toThrow(/cannot shrink from 65536 to 32768 bytes/);
    await lu.grow(128 * 512); // the same size: nothing to tell
    expectGood(await run(dev, cdb([0x00]), { nx }));

    const fixed = makeLu({ lun: 0, backend: new MemoryBackend(64 * 512) }).lu;
    await expect(fixed.grow(128 * 512)).rejects.toThrow(/this storage cannot grow/);
  });
});
