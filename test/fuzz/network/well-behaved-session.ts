/** A fresh, well-behaved session: login, WRITE(10) with immediate data, READ(10) of the same blocks, compare, logout. */
import type { Prng } from '../engine/mutate.js';
import { TestInitiator } from '../../support/test-initiator.js';

export async function checkWellBehavedSession(port: number, target: string, rng: Prng, blocks: number): Promise<void> {
  const ini = await TestInitiator.connect(port);
  try {
    const login = await ini.login({ targetName: target, isid: Buffer.from([0x80, 0, 0, 0xaa, 0, 1]) });
    if (login.status !== 0) throw new Error(`well-behaved login refused: status 0x${login.status.toString(16)}`);
    await ini.clearUnitAttentions();
    const lba = rng.below(blocks - 8);
    const pattern = rng.bytes(8 * 512);
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x2a;
    cdb.writeUInt32BE(lba, 2);
    cdb.writeUInt16BE(8, 7);
    const itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(cdb, { write: true, edtl: pattern.length }), pattern);
    const written = await ini.collect(itt);
    if (written.status !== 0) throw new Error(`well-behaved WRITE(10) status 0x${written.status.toString(16)}`);
    const read = await ini.read10(lba, 8);
    if (!read.equals(pattern)) throw new Error(`well-behaved READ(10) at LBA ${lba} does not return what was written`);
    await ini.logout();
  } finally {
    ini.close();
  }
}
