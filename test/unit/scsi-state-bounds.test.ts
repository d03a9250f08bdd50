// Issue 11 defect 8: per-initiator state in the SCSI layer is bounded.
import { describe, expect, it } from 'vitest';
import { KEY, cdb, clearUa, expectGood, expectSense, makeDevice, nexus, run, u32 } from './scsi-helpers.js';

/** The documented limits (README). */
const MAX_REGISTRATIONS = 256;
const MAX_REMEMBERED_LOST_NEXUSES = 1024;

const TUR = () => cdb([0x00]);
const registerIgnore = (key: bigint) => {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(key, 8);
  return { c: cdb([0x5f, 6, 0, 0, 0, ...u32(24), 0]), p };
};
const isid = (i: number) => `23d0${i.toString(16).padStart(8, '0')}`;

describe('persistent reservation registrations are capped per LU', () => {
  it(`REGISTER beyond ${MAX_REGISTRATIONS} registrations: ILLEGAL REQUEST / INSUFFICIENT REGISTRATION RESOURCES (SPC-4 §5.13.7)`, async () => {
    const { dev } = makeDevice();
    for (let i = 0; i < MAX_REGISTRATIONS; i++) {
      const n = nexus('many', false, { isid: isid(i) });
      await clearUa(dev, n);
      const { c, p } = registerIgnore(BigInt(i + 1));
      expectGood(await run(dev, c, { nx: n, dataOut: p }));
    }
    const extra = nexus('many', false, { isid: isid(MAX_REGISTRATIONS) });
    await clearUa(dev, extra);
    const { c, p } = registerIgnore(0xffn);
    expectSense(await run(dev, c, { nx: extra, dataOut: p }), KEY.ILLEGAL_REQUEST, 0x55, 0x04);
    // A registered nexus can still change its key, and a freed slot can be taken again.
    const first = nexus('many', false, { isid: isid(0) });
    expectGood(await run(dev, c, { nx: first, dataOut: p }));
    const un = registerIgnore(0n);
    expectGood(await run(dev, un.c, { nx: first, dataOut: un.p }));
    expectGood(await run(dev, c, { nx: extra, dataOut: p }));
  });
});

describe('unit attention state of lost I_T nexuses is bounded', () => {
  it('a returning nexus within the bound sees I_T NEXUS LOSS; one evicted by later losses sees the power-on UA', async () => {
    const { dev, lu } = makeDevice();
    const early = nexus('early');
    const recent = nexus('recent');
    await clearUa(dev, early);
    await dev.nexusLost(early);
    for (let i = 0; i < MAX_REMEMBERED_LOST_NEXUSES; i++) {
      const n = nexus('churn', false, { isid: isid(i) });
      await clearUa(dev, n);
      await dev.nexusLost(n);
    }
    await clearUa(dev, recent);
    await dev.nexusLost(recent);
    expect([...lu.unitAttentions.knownNexuses()].length).toBeLessThanOrEqual(MAX_REMEMBERED_LOST_NEXUSES);
    expectSense(await run(dev, TUR(), { nx: early }), KEY.UNIT_ATTENTION, 0x29, 0x00);
    expectSense(await run(dev, TUR(), { nx: recent }), KEY.UNIT_ATTENTION, 0x29, 0x07);
    expectGood(await run(dev, TUR(), { nx: recent }));
  });

  it('a live nexus keeps its queued unit attentions however many others come and go', async () => {
    const { dev } = makeDevice();
    const live = nexus('live');
    const other = nexus('other');
    await clearUa(dev, live);
    await clearUa(dev, other);
    await dev.clearTaskSet(other, 0); // 2Fh/00h queued for `live`
    for (let i = 0; i < 2 * MAX_REMEMBERED_LOST_NEXUSES; i++) {
      const n = nexus('churn', false, { isid: isid(i) });
      await clearUa(dev, n);
      await dev.nexusLost(n);
    }
    expectSense(await run(dev, TUR(), { nx: live }), KEY.UNIT_ATTENTION, 0x2f, 0x00);
    expectGood(await run(dev, TUR(), { nx: live }));
    expectGood(await run(dev, TUR(), { nx: other }));
  });
});
