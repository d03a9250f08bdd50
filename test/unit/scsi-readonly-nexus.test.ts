// A read-only ACL entry (nexus.readOnly) changes nothing other initiators see (issue 11 #9).
import { describe, expect, it } from 'vitest';
import { KEY, cdb, clearUa, expectGood, expectSense, makeDevice, nexus, run, u16, u32 } from './scsi-helpers.js';

const RW = nexus('rw');
const RO = nexus('ro', true);
const write10 = cdb([0x2a, 0, ...u32(0), 0, 0, 1, 0]);
const prin = (sa: number) => cdb([0x5e, sa, 0, 0, 0, 0, 0, ...u16(4096), 0]);

async function ready() {
  const d = makeDevice({ blocks: 64 });
  for (const n of [RW, RO]) await clearUa(d.dev, n);
  return d;
}

describe('read-only nexus and shared state (issue 11 #9)', () => {
  it('RESERVE(6)/(10) from a read-only nexus is DATA PROTECT and leaves the read-write owner writing', async () => {
    const { dev } = await ready();
    expectSense(await run(dev, cdb([0x16]), { nx: RO }), KEY.DATA_PROTECT, 0x27, 0x00);
    expectSense(await run(dev, cdb([0x56]), { nx: RO }), KEY.DATA_PROTECT, 0x27, 0x00);
    expectGood(await run(dev, write10, { nx: RW, dataOut: Buffer.alloc(512) }));
    expectGood(await run(dev, cdb([0x17]), { nx: RO })); // RELEASE: nothing to release, GOOD
  });

  it('PERSISTENT RESERVE OUT from a read-only nexus is DATA PROTECT and registers nothing', async () => {
    const { dev } = await ready();
    const params = Buffer.alloc(24);
    params.writeBigUInt64BE(0x1234n, 8); // SERVICE ACTION RESERVATION KEY
    const register = cdb([0x5f, 0x00, 0, 0, 0, ...u32(24), 0]);
    expectSense(await run(dev, register, { nx: RO, dataOut: params }), KEY.DATA_PROTECT, 0x27, 0x00);
    const keys = await run(dev, prin(0), { nx: RW });
    expectGood(keys);
    expect(keys.data!.readUInt32BE(4)).toBe(0); // ADDITIONAL LENGTH: no keys
    expectGood(await run(dev, prin(0), { nx: RO })); // reading the state is fine
  });

  it('MODE SELECT from a read-only nexus is DATA PROTECT and WCE stays on', async () => {
    const { dev, lu } = await ready();
    const sense = await run(dev, cdb([0x1a, 0x08, 0x08, 0, 255, 0]), { nx: RO }); // MODE SENSE(6), DBD, caching page
    expectGood(sense);
    const list = Buffer.from(sense.data!);
    list[0] = 0; // MODE DATA LENGTH is reserved in MODE SELECT
    list[2] = 0; // device-specific parameter (WP) is not changeable
    list[4 + 2]! &= ~0x04; // WCE off
    expectSense(await run(dev, cdb([0x15, 0x10, 0, 0, list.length, 0]), { nx: RO, dataOut: list }), KEY.DATA_PROTECT, 0x27, 0x00);
    expect(lu.writeCache).toBe(true);
    expectGood(await run(dev, cdb([0x15, 0x10, 0, 0, 0, 0]), { nx: RO })); // an empty parameter list changes nothing
    expectGood(await run(dev, cdb([0x15, 0x10, 0, 0, list.length, 0]), { nx: RW, dataOut: list }));
    expect(lu.writeCache).toBe(false);
  });
});
