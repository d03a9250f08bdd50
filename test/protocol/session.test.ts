import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Opcode } from '../../src/pdu/opcodes.js';
import { lunDefinition, startInProcessServer, TEST_TARGET, type RunningServer } from '../support/in-process-server.js';
import { TestInitiator } from '../support/test-initiator.js';
import path from 'node:path';

const PRIVATE_TARGET = 'iqn.2016-06.org.gluster:private';
const ALLOWED = 'iqn.1994-05.com.redhat:allowed';
const SHARED_TARGET = 'iqn.2016-06.org.gluster:shared';
const READER = 'iqn.1994-05.com.redhat:reader';
const WRITER = 'iqn.1994-05.com.redhat:writer';

let srv: RunningServer;
beforeAll(async () => {
  srv = await startInProcessServer({
    iscsi: { loginTimeout: 1, nopInInterval: 1, nopInTimeout: 1 },
    targets: (dir) => [
      { iqn: TEST_TARGET, luns: [lunDefinition(path.join(dir, 'lun0.img'))], acl: [{ initiator: '*', readOnly: false }] },
      {
        iqn: PRIVATE_TARGET,
        luns: [lunDefinition(path.join(dir, 'private.img'), { serial: 'PRIV', naa: '6001405abcdef0123456789abcdef099' })],
        acl: [{ initiator: ALLOWED, readOnly: false }],
      },
      {
        iqn: SHARED_TARGET,
        luns: [lunDefinition(path.join(dir, 'shared.img'), { serial: 'SHARED', naa: '6001405abcdef0123456789abcdef098' })],
        acl: [{ initiator: WRITER, readOnly: false }, { initiator: READER, readOnly: true }],
      },
    ],
  });
});
afterAll(async () => { await srv.stop(); });

async function loggedIn(opts: Parameters<TestInitiator['login']>[0] = {}): Promise<TestInitiator> {
  const ini = await TestInitiator.connect(srv.port);
  const res = await ini.login(opts);
  expect(res.status).toBe(0);
  return ini;
}

/** A raw first Login Request with the given keys; returns the status class/detail. */
async function firstLoginStatus(pairs: Array<[string, string]>, tweak?: (bhs: Buffer) => void): Promise<number> {
  const ini = await TestInitiator.connect(srv.port);
  const isid = Buffer.from([0x80, 0, 0, 0, 0, 9]);
  if (tweak === undefined) {
    const r = await ini.loginStep(isid, 0, 0, 1, true, pairs);
    ini.close();
    return r.status;
  }
  // Build the PDU by hand so the test can corrupt fields.
  const h = Buffer.alloc(48);
  h[0] = 0x43;
  h[1] = 0x81;
  isid.copy(h, 8);
  tweak(h);
  const { encodeText } = await import('../../src/pdu/text.js');
  await ini.sendPdu(h, encodeText(pairs));
  const res = await ini.next();
  ini.close();
  return res === null ? -1 : (res.responseStatusClass << 8) | res.responseStatusDetail;
}

describe('discovery (RFC 7143 Appendix C)', () => {
  it('SendTargets=All lists the targets this initiator may log into, at the address it connected to', async () => {
    const ini = await loggedIn({ sessionType: 'Discovery' });
    const pairs = await ini.text([['SendTargets', 'All']]);
    expect(pairs).toEqual([
      ['TargetName', TEST_TARGET],
      ['TargetAddress', `127.0.0.1:${srv.port},1`],
    ]);
    const logout = await ini.logout();
    expect(logout?.opcode).toBe(Opcode.LogoutResponse);
    expect(logout?.bhs[2]).toBe(0);
    expect(await ini.waitClosed()).toBe(true);

    const allowed = await loggedIn({ sessionType: 'Discovery', initiatorName: ALLOWED });
    const names = (await allowed.text([['SendTargets', 'All']])).filter(([k]) => k === 'TargetName').map(([, v]) => v);
    expect(names).toEqual([TEST_TARGET, PRIVATE_TARGET]);
    allowed.close();
  });

  it('answers SendTargets in a normal session with its own target; All is refused there', async () => {
    const ini = await loggedIn();
    expect(await ini.text([['SendTargets', '']])).toEqual([['TargetName', TEST_TARGET], ['TargetAddress', `127.0.0.1:${srv.port},1`]]);
    expect(await ini.text([['SendTargets', 'All']])).toEqual([['SendTargets', 'Reject']]);
    ini.close();
  });

  it('splits a response longer than MaxRecvDataSegmentLength and continues it', async () => {
    const ini = await loggedIn({ sessionType: 'Discovery', initiatorName: ALLOWED, keys: { MaxRecvDataSegmentLength: '512' } });
    // 512 bytes is enough for one target; ask for both a number of times in one request.
    const pairs = await ini.text(Array.from({ length: 6 }, () => ['SendTargets', 'All'] as [string, string]));
    expect(pairs.filter(([k]) => k === 'TargetName')).toHaveLength(12);
    ini.close();
  });
});

describe('login refusals (RFC 7143 §11.13.5)', () => {
  it('unknown target → 0x0203', async () => {
    expect(await firstLoginStatus([['InitiatorName', 'iqn.2007-10.com.example:x'], ['TargetName', 'iqn.2016-06.org.gluster:nope'], ['AuthMethod', 'None']])).toBe(0x0203);
  });
  it('initiator not in the ACL → 0x0202', async () => {
    expect(await firstLoginStatus([['InitiatorName', 'iqn.2007-10.com.example:x'], ['TargetName', PRIVATE_TARGET], ['AuthMethod', 'None']])).toBe(0x0202);
  });
  it('missing InitiatorName → 0x0207; missing TargetName → 0x0207', async () => {
    expect(await firstLoginStatus([['TargetName', TEST_TARGET]])).toBe(0x0207);
    expect(await firstLoginStatus([['InitiatorName', 'iqn.2007-10.com.example:x']])).toBe(0x0207);
  });
  it('unsupported version → 0x0205', async () => {
    expect(await firstLoginStatus([['InitiatorName', 'iqn.2007-10.com.example:x'], ['TargetName', TEST_TARGET]], (h) => { h[2] = 5; h[3] = 3; })).toBe(0x0205);
  });
  it('unknown SessionType → 0x0209; malformed text → 0x0200', async () => {
    expect(await firstLoginStatus([['InitiatorName', 'iqn.2007-10.com.example:x'], ['SessionType', 'Bogus']])).toBe(0x0209);
    const ini = await TestInitiator.connect(srv.port);
    const h = Buffer.alloc(48);
    h[0] = 0x43;
    h[1] = 0x81;
    await ini.sendPdu(h, Buffer.from('no-equals-sign\0'));
    const res = await ini.next();
    expect((res!.responseStatusClass << 8) | res!.responseStatusDetail).toBe(0x0200);
    expect(await ini.waitClosed()).toBe(true);
  });
  it('a session that does not exist (TSIH ≠ 0) → 0x020a', async () => {
    expect(await firstLoginStatus([['InitiatorName', 'iqn.2007-10.com.example:x'], ['TargetName', TEST_TARGET]], (h) => { h.writeUInt16BE(0x7777, 14); })).toBe(0x020a);
  });
  it('a login that stalls is timed out', async () => {
    const ini = await TestInitiator.connect(srv.port);
    expect(await ini.waitClosed(4000)).toBe(true);
  });
});

describe('sessions', () => {
  it('reinstates a session when the same initiator and ISID log in again', async () => {
    const isid = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x00, 0x01]);
    const first = await loggedIn({ isid });
    await first.clearUnitAttentions();
    // Leave a write waiting for data on the old session.
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x2a;
    cdb.writeUInt16BE(8, 7);
    await first.sendPdu(first.commandHeader(cdb, { write: true, edtl: 4096 }));
    const second = await loggedIn({ isid });
    expect(await first.waitClosed()).toBe(true);
    await second.clearUnitAttentions();
    const data = Buffer.alloc(4096, 0x42);
    expect((await second.write10(50, data)).status).toBe(0);
    expect((await second.read10(50, 8)).equals(data)).toBe(true);
    second.close();
  });

  it('logs out (close session) after answering', async () => {
    const ini = await loggedIn();
    const res = await ini.logout();
    expect(res?.opcode).toBe(Opcode.LogoutResponse);
    expect(res?.bhs[2]).toBe(0);
    expect(await ini.waitClosed()).toBe(true);
  });

  it('pings an idle connection with NOP-In and drops it when unanswered', async () => {
    const ini = await loggedIn();
    const ping = await ini.next(3000);
    expect(ping?.opcode).toBe(Opcode.NopIn);
    expect(ping?.itt).toBe(0xffffffff);
    expect(ping?.targetTransferTag).not.toBe(0xffffffff);
    // No answer: the target gives up within nopInTimeout (+ tick granularity).
    expect(await ini.waitClosed(4000)).toBe(true);
  });

  it('keeps a connection that answers its pings', async () => {
    const ini = await loggedIn();
    for (let i = 0; i < 3; i++) {
      const ping = await ini.next(3000);
      expect(ping?.opcode).toBe(Opcode.NopIn);
      const h = Buffer.alloc(48);
      h[0] = 0x40 | Opcode.NopOut;
      h[1] = 0x80;
      h.writeUInt32BE(0xffffffff, 16);
      h.writeUInt32BE(ping!.targetTransferTag, 20);
      h.writeUInt32BE(ini.cmdSN, 24);
      h.writeUInt32BE(ini.expStatSN, 28);
      await ini.sendPdu(h);
    }
    expect(ini.closed).toBe(false);
    ini.close();
  });
});

describe('task management (RFC 7143 §11.5)', () => {
  const tmf = (ini: TestInitiator, fn: number, refItt?: number, refCmdSN?: number): Buffer =>
    ini.tmfHeader(fn, { ...(refItt !== undefined ? { refItt } : {}), ...(refCmdSN !== undefined ? { refCmdSN } : {}) });

  it('ABORT TASK ends a write waiting for data; the session goes on', async () => {
    const ini = await loggedIn({ keys: { InitialR2T: 'Yes', ImmediateData: 'No' } });
    await ini.clearUnitAttentions();
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x2a;
    cdb.writeUInt16BE(8, 7);
    const itt = ini.itt;
    const cmdSN = ini.cmdSN;
    await ini.sendPdu(ini.commandHeader(cdb, { write: true, edtl: 4096 }));
    const r2t = await ini.next();
    expect(r2t?.opcode).toBe(Opcode.R2T);
    await ini.sendPdu(tmf(ini, 1, itt, cmdSN));
    const res = await ini.next();
    expect(res?.opcode).toBe(Opcode.TaskMgmtResponse);
    expect(res?.bhs[2]).toBe(0); // function complete
    // The aborted task is gone: aborting it again says so.
    await ini.sendPdu(tmf(ini, 1, itt, cmdSN));
    expect((await ini.next())?.bhs[2]).toBe(1); // task does not exist
    const data = Buffer.alloc(4096, 7);
    expect((await ini.write10(10, data)).status).toBe(0);
    ini.close();
  });

  it('LOGICAL UNIT RESET answers complete and raises 29h/03h on the next command', async () => {
    const ini = await loggedIn();
    await ini.clearUnitAttentions();
    await ini.sendPdu(tmf(ini, 5));
    const res = await ini.next();
    expect(res?.opcode).toBe(Opcode.TaskMgmtResponse);
    expect(res?.bhs[2]).toBe(0);
    const senses = await ini.clearUnitAttentions();
    expect(senses.map((s) => [s[2]! & 0x0f, s[12], s[13]])).toContainEqual([0x06, 0x29, 0x03]);
    ini.close();
  });

  it('a read-only initiator cannot reset or clear what a writer uses: authorization failed, the writer goes on', async () => {
    const writer = await loggedIn({ initiatorName: WRITER, targetName: SHARED_TARGET });
    await writer.clearUnitAttentions();
    const reader = await loggedIn({ initiatorName: READER, targetName: SHARED_TARGET });
    await reader.clearUnitAttentions();
    for (const fn of [4, 5, 6, 7]) { // CLEAR TASK SET, LU RESET, TARGET WARM RESET, TARGET COLD RESET
      await reader.sendPdu(tmf(reader, fn));
      const res = await reader.next();
      expect(res?.opcode).toBe(Opcode.TaskMgmtResponse);
      expect(res?.bhs[2]).toBe(6); // function authorization failed (RFC 7143 §11.6.1)
    }
    await reader.sendPdu(tmf(reader, 2)); // ABORT TASK SET: its own tasks only
    expect((await reader.next())?.bhs[2]).toBe(0);
    // The writer saw no reset: no unit attention, its session is alive, writes work.
    expect(await writer.clearUnitAttentions()).toEqual([]);
    expect((await writer.write10(0, Buffer.alloc(512, 1))).status).toBe(0);
    expect(writer.closed).toBe(false);
    writer.close();
    reader.close();
  });

  it('reports LUN does not exist and function not supported', async () => {
    const ini = await loggedIn();
    const h = tmf(ini, 5);
    h[9] = 7; // LUN 7
    await ini.sendPdu(h);
    expect((await ini.next())?.bhs[2]).toBe(2);
    await ini.sendPdu(tmf(ini, 3)); // CLEAR ACA
    expect((await ini.next())?.bhs[2]).toBe(5);
    ini.close();
  });
});

describe('hostile peers', () => {
  async function stillServes(): Promise<void> {
    const ini = await loggedIn();
    await ini.clearUnitAttentions();
    expect((await ini.read10(0, 1)).length).toBe(512);
    ini.close();
  }

  it('garbage instead of a login: the connection is dropped, others are served', async () => {
    const ini = await TestInitiator.connect(srv.port);
    await ini.writeRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(96, 'x')));
    const res = await ini.next(3000).catch(() => null);
    if (res !== null) expect(res.opcode).toBe(Opcode.LoginResponse);
    expect(await ini.waitClosed()).toBe(true);
    await stillServes();
  });

  it('an unknown opcode in full feature phase gets a Reject carrying its header', async () => {
    const ini = await loggedIn();
    const h = Buffer.alloc(48);
    h[0] = 0x1c;
    h[1] = 0x80;
    h.writeUInt32BE(0x1234, 16);
    await ini.sendPdu(h);
    const rej = await ini.next();
    expect(rej?.opcode).toBe(Opcode.Reject);
    expect(rej?.bhs[2]).toBe(0x05); // command not supported
    expect(rej?.data.subarray(0, 48).equals(h)).toBe(true);
    await ini.nopOut(); // still alive
    ini.close();
  });

  it('a data digest error gets a Reject and a failed command, not a crash', async () => {
    const ini = await loggedIn({ keys: { DataDigest: 'CRC32C', ImmediateData: 'Yes' } });
    await ini.clearUnitAttentions();
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x2a;
    cdb.writeUInt16BE(1, 7);
    const header = ini.commandHeader(cdb, { write: true, edtl: 512 });
    const itt = header.readUInt32BE(16);
    header[5] = 0; header[6] = 2; header[7] = 0;
    const bad = Buffer.concat([header, Buffer.alloc(512, 1), Buffer.from([1, 2, 3, 4])]);
    await ini.writeRaw(bad);
    const rej = await ini.next();
    expect(rej?.opcode).toBe(Opcode.Reject);
    expect(rej?.bhs[2]).toBe(0x02);
    const r = await ini.collect(itt);
    expect(r.status).toBe(0x02);
    expect([r.sense![2]! & 0x0f, r.sense![12], r.sense![13]]).toEqual([0x0b, 0x47, 0x05]);
    ini.close();
  });

  it('a truncated PDU followed by a hang-up, and a peer vanishing mid-write, leave the server serving', async () => {
    const a = await loggedIn();
    const h = a.commandHeader(Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 64, 0]), { write: true, edtl: 32768 });
    h[5] = 0; h[6] = 0x40; h[7] = 0; // claims 16 KiB of immediate data
    await a.writeRaw(Buffer.concat([h, Buffer.alloc(1000)]));
    a.close();
    const b = await loggedIn({ keys: { InitialR2T: 'Yes', ImmediateData: 'No' } });
    await b.clearUnitAttentions();
    await b.sendPdu(b.commandHeader(Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 64, 0]), { write: true, edtl: 32768 }));
    expect((await b.next())?.opcode).toBe(Opcode.R2T);
    b.close();
    await new Promise((r) => setTimeout(r, 100));
    await stillServes();
  });

  it('a header digest error drops the connection (ERL 0)', async () => {
    const ini = await loggedIn({ keys: { HeaderDigest: 'CRC32C' } });
    const h = Buffer.alloc(48);
    h[0] = 0x40;
    h[1] = 0x80;
    h.writeUInt32BE(5, 16);
    h.writeUInt32BE(0xffffffff, 20);
    await ini.writeRaw(Buffer.concat([h, Buffer.from([0, 0, 0, 0])]));
    expect(await ini.waitClosed()).toBe(true);
    await stillServes();
  });
});
