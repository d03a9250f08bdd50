// Issue 11 hardening: patterns of PDUs that must not make the server hold memory beyond its
// DataBudget, stall other initiators, or lose a session's CmdSN (RFC 7143 §4.2.2.1, §7.8).
import { afterEach, describe, expect, it } from 'vitest';
import { Opcode } from '../../src/pdu/opcodes.js';
import { startInProcessServer, type RunningServer } from '../support/in-process-server.js';
import { TestInitiator } from '../support/test-initiator.js';

const MiB = 1024 * 1024;
let srv: RunningServer | null = null;
const initiators: TestInitiator[] = [];
afterEach(async () => {
  for (const i of initiators.splice(0)) i.close();
  await srv?.stop();
  srv = null;
});

async function server(iscsi: Parameters<typeof startInProcessServer>[0] extends infer O ? O extends { iscsi?: infer I } ? I : never : never): Promise<RunningServer> {
  srv = await startInProcessServer({ iscsi });
  return srv;
}

async function loggedIn(port: number, isid: number, keys: Record<string, string> = {}): Promise<TestInitiator> {
  const ini = await TestInitiator.connect(port);
  initiators.push(ini);
  const res = await ini.login({ isid: Buffer.from([0x80, 0, 0, 0, 0, isid]), keys });
  expect(res.status).toBe(0);
  await ini.clearUnitAttentions();
  return ini;
}

const TUR = Buffer.alloc(6);
function read10(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x28;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}
function write10(lba: number, blocks: number): Buffer {
  const c = read10(lba, blocks);
  c[0] = 0x2a;
  return c;
}

/** Sense key, ASC, ASCQ of fixed-format sense data. */
function senseOf(sense: Buffer | null): [number, number, number] | null {
  return sense === null ? null : [sense[2]! & 0x0f, sense[12]!, sense[13]!];
}

describe('the data budget under hostile sessions (issue 11 #3)', () => {
  it('commands holding buffered Data-Out they never send do not starve another session, and time out', async () => {
    const s = await server({ maxDataInFlight: 8 * MiB, nopInTimeout: 1 });
    const victim = await loggedIn(s.port, 1);
    const attacker = await loggedIn(s.port, 2, { InitialR2T: 'Yes', ImmediateData: 'No' });
    // TEST UNIT READY with W=1 and a 4 MiB EDTL, twice: a command that transfers nothing
    // claims all of the budget and never sends its data.
    const itts = [attacker.itt, attacker.itt + 1];
    for (let i = 0; i < 2; i++) await attacker.sendPdu(attacker.commandHeader(TUR, { write: true, edtl: 4 * MiB }));
    await new Promise((r) => setTimeout(r, 100));
    const data = Buffer.alloc(64 * 1024, 0x5a);
    expect((await victim.write10(100, data)).status).toBe(0);
    expect((await victim.read10(100, 128)).equals(data)).toBe(true);
    expect(s.server.dataBudget.inUse).toBeLessThan(1 * MiB);
    // No Data-Out for nopInTimeout: each ends with ABORTED COMMAND / INITIATOR RESPONSE TIMEOUT.
    for (const itt of itts) {
      const r = await attacker.collect(itt, 5000);
      expect({ status: r.status, sense: senseOf(r.sense) }).toEqual({ status: 2, sense: [0x0b, 0x4b, 0x06] });
    }
    expect(s.server.dataBudget.inUse).toBe(0);
  });
});

describe('memory outside the budget (issue 11 #4)', () => {
  it('read data stays counted until the socket takes it: a session that never reads holds at most its budget, then is dropped', async () => {
    const s = await server({ maxDataInFlight: 8 * MiB, nopInTimeout: 1 });
    const attacker = await loggedIn(s.port, 3);
    attacker.socket.pause();
    for (let i = 0; i < 48; i++) await attacker.sendPdu(attacker.commandHeader(read10(0, 2048), { read: true, edtl: MiB }));
    await new Promise((r) => setTimeout(r, 1500));
    const queued = [...(s.server as unknown as { connections: Set<{ socket: { writableLength: number } }> }).connections]
      .reduce((n, c) => n + c.socket.writableLength, 0);
    expect(queued).toBeLessThanOrEqual(8 * MiB + MiB);
    expect(s.server.dataBudget.inUse).toBeGreaterThanOrEqual(queued - MiB);
    // Its output stalls for nopInTimeout: the connection is dropped and its memory given back,
    // so another session gets its reads.
    const victim = await loggedIn(s.port, 4);
    expect((await victim.read10(0, 8)).length).toBe(4096);
    await new Promise((r) => setTimeout(r, 200));
    expect(s.server.dataBudget.inUse).toBe(0);
  });

  it('commands parked behind a CmdSN gap count against the budget and a gap holding too much ends the connection', async () => {
    const s = await server({ maxDataInFlight: 8 * MiB });
    const attacker = await loggedIn(s.port, 5, { FirstBurstLength: '262144' });
    attacker.cmdSN++; // the gap: this CmdSN never comes
    const data = Buffer.alloc(256 * 1024, 1);
    let peak = 0;
    for (let i = 0; i < 100 && !attacker.closed; i++) {
      await attacker.sendPdu(attacker.commandHeader(write10(i * 512, 512), { write: true, edtl: data.length }), data);
      peak = Math.max(peak, s.server.dataBudget.inUse);
    }
    expect(await attacker.waitClosed(3000)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(s.server.dataBudget.inUse).toBe(0);
  });
});

describe('a command PDU longer than MaxRecvDataSegmentLength (issue 11 #10)', () => {
  it('gets Reject and ends with CHECK CONDITION, keeping its CmdSN: the next command runs', async () => {
    const s = await server({});
    const ini = await loggedIn(s.port, 6, { FirstBurstLength: '262144' });
    const itt = ini.itt;
    const big = Buffer.alloc(262144 + 4096, 2);
    await ini.sendPdu(ini.commandHeader(write10(0, big.length / 512), { write: true, edtl: big.length }), big);
    const reject = await ini.next();
    expect(reject?.opcode).toBe(Opcode.Reject);
    const r = await ini.collect(itt, 3000);
    expect({ status: r.status, sense: senseOf(r.sense) }).toEqual({ status: 2, sense: [0x0b, 0x0c, 0x0d] });
    const next = ini.itt;
    await ini.sendPdu(ini.commandHeader(TUR, { edtl: 0 }));
    expect((await ini.collect(next, 3000)).status).toBe(0);
  });
});

describe('a WRITE whose data never comes (issue 11 #7)', () => {
  it('does not hold its LBA range: an overlapping COMPARE AND WRITE and WRITE from another session complete', async () => {
    const s = await server({});
    const attacker = await loggedIn(s.port, 7, { InitialR2T: 'Yes', ImmediateData: 'No' });
    const victim = await loggedIn(s.port, 8);
    await attacker.sendPdu(attacker.commandHeader(write10(0, 2048), { write: true, edtl: MiB }));
    expect((await attacker.next())?.opcode).toBe(Opcode.R2T);
    // COMPARE AND WRITE of LBA 0, one block: compare with what is there (zeros), write 0x77.
    const caw = Buffer.alloc(16);
    caw[0] = 0x89;
    caw[13] = 1;
    const itt = victim.itt;
    const payload = Buffer.concat([Buffer.alloc(512, 0), Buffer.alloc(512, 0x77)]);
    await victim.sendPdu(victim.commandHeader(caw, { write: true, edtl: 1024 }), payload);
    expect((await victim.collect(itt, 3000)).status).toBe(0);
    expect((await victim.write10(8, Buffer.alloc(4096, 9))).status).toBe(0);
  });
});
