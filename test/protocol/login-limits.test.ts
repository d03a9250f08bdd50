/**
 * Hostile and long text in the login phase (issue 11 #2, #8, #11): the text of a login is capped
 * (RFC 7143 §6.1), iSCSI names are at most 223 bytes (§4.2.7.1), long Login Responses use the
 * C bit (§11.13.3), and one connection flooding the login phase does not stall other sessions.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Opcode } from '../../src/pdu/opcodes.js';
import type { Pdu } from '../../src/pdu/pdu.js';
import { decodeText, encodeText } from '../../src/pdu/text.js';
import { lunDefinition, startInProcessServer, TEST_TARGET, type RunningServer } from '../support/in-process-server.js';
import { TestInitiator } from '../support/test-initiator.js';

const PRIVATE_TARGET = 'iqn.2016-06.org.gluster:private';
const ISID = Buffer.from([0x80, 0, 0, 0, 0, 0x21]);

let srv: RunningServer;
beforeAll(async () => {
  srv = await startInProcessServer({
    targets: (dir) => [
      { iqn: TEST_TARGET, luns: [lunDefinition(path.join(dir, 'lun0.img'))], acl: [{ initiator: '*', readOnly: false }] },
      {
        iqn: PRIVATE_TARGET,
        luns: [lunDefinition(path.join(dir, 'private.img'), { serial: 'PRIV', naa: '6001405abcdef0123456789abcdef099' })],
        acl: [{ initiator: 'iqn.1994-05.com.redhat:allowed', readOnly: false }],
      },
    ],
  });
});
afterAll(async () => { await srv.stop(); });

/** A Login Request BHS (§11.12) with the given stage bits. */
function loginHeader(o: { csg: number; nsg?: number; transit?: boolean; cont?: boolean; itt?: number }): Buffer {
  const h = Buffer.alloc(48);
  h[0] = 0x40 | Opcode.LoginRequest;
  h[1] = (o.transit ? 0x80 : 0) | (o.cont ? 0x40 : 0) | (o.csg << 2) | (o.transit ? (o.nsg ?? 0) : 0);
  ISID.copy(h, 8);
  h.writeUInt32BE(o.itt ?? 1, 16);
  h.writeUInt32BE(1, 24);
  return h;
}

const status = (p: Pdu): number => (p.responseStatusClass << 8) | p.responseStatusDetail;

async function loggedIn(opts: Parameters<TestInitiator['login']>[0] = {}): Promise<TestInitiator> {
  const ini = await TestInitiator.connect(srv.port);
  expect((await ini.login(opts)).status).toBe(0);
  return ini;
}

describe('login text limits (RFC 7143 §6.1, §4.2.7.1)', () => {
  it('refuses a login gathering more than 64 KiB of text with 0x0200, before any ACL check', async () => {
    const ini = await TestInitiator.connect(srv.port);
    const first = Buffer.from(`InitiatorName=iqn.2007-10.com.example:stranger\0TargetName=${PRIVATE_TARGET}\0X-junk=`);
    await ini.sendPdu(loginHeader({ csg: 0, cont: true }), first);
    let res = (await ini.next())!;
    let n = 1;
    const chunk = Buffer.alloc(8192, 0x41);
    while (status(res) === 0 && n < 12) {
      await ini.sendPdu(loginHeader({ csg: 0, cont: true }), chunk);
      res = (await ini.next())!;
      n++;
    }
    expect(status(res)).toBe(0x0200);
    expect(n).toBeLessThanOrEqual(9);
    expect(await ini.waitClosed()).toBe(true);
  });

  it('a connection that pipelines Login Requests is dropped, and another session\'s NOP-Out round trip stays fast', async () => {
    const other = await loggedIn();
    const flooder = await TestInitiator.connect(srv.port);
    const one = loginHeader({ csg: 0, cont: true });
    const burst = Buffer.concat(Array.from({ length: 10_000 }, () => one));
    let flooding = true;
    const flood = (async () => {
      // Empty C-bit Login Requests, written as fast as the socket takes them, until dropped or told to stop.
      while (flooding && !flooder.closed) {
        if (!flooder.socket.write(burst)) await new Promise((r) => { flooder.socket.once('drain', r); flooder.socket.once('close', r); });
      }
    })();
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      await other.nopOut();
      rtts.push(Date.now() - t0);
      await new Promise((r) => setTimeout(r, 100));
    }
    flooding = false;
    await flood;
    expect(Math.max(...rtts)).toBeLessThan(500);
    expect(await flooder.waitClosed(3000)).toBe(true);
    other.close();
  });

  it('accepts an InitiatorName of 223 bytes and refuses 224 (0x0200); a TargetName over 223 bytes likewise', async () => {
    const name = (n: number): string => `iqn.2007-10.com.example:${'x'.repeat(n - 24)}`;
    expect(name(223)).toHaveLength(223);
    const attempt = async (pairs: Array<[string, string]>): Promise<number> => {
      const ini = await TestInitiator.connect(srv.port);
      const r = await ini.loginStep(ISID, 0, 0, 1, true, pairs);
      ini.close();
      return r.status;
    };
    expect(await attempt([['InitiatorName', name(223)], ['TargetName', TEST_TARGET], ['AuthMethod', 'None']])).toBe(0);
    expect(await attempt([['InitiatorName', name(224)], ['TargetName', TEST_TARGET], ['AuthMethod', 'None']])).toBe(0x0200);
    expect(await attempt([['InitiatorName', name(8000)], ['SessionType', 'Discovery'], ['AuthMethod', 'None']])).toBe(0x0200);
    expect(await attempt([['InitiatorName', name(40)], ['TargetName', `${TEST_TARGET}${'y'.repeat(224)}`], ['AuthMethod', 'None']])).toBe(0x0200);
  });
});

describe('connections that never finish their login (iscsi.maxPendingLogins, maxPendingLoginsPerAddress, loginTimeout)', () => {
  let small: RunningServer;
  beforeAll(async () => {
    small = await startInProcessServer({ iscsi: { maxPendingLogins: 5, maxPendingLoginsPerAddress: 3, loginTimeout: 2 } });
  });
  afterAll(async () => { await small.stop(); });

  /** Connections from `address` that stall: some send nothing, some stop after their first Login Request. */
  async function stallers(address: string, n: number): Promise<TestInitiator[]> {
    const out: TestInitiator[] = [];
    for (let i = 0; i < n; i++) {
      const ini = await TestInitiator.connect(small.port, '127.0.0.1', address);
      if (i % 2 === 1) await ini.sendPdu(loginHeader({ csg: 0 }), encodeText([['InitiatorName', 'iqn.2007-10.com.example:stalls'], ['TargetName', TEST_TARGET], ['AuthMethod', 'None']]));
      out.push(ini);
    }
    await new Promise((r) => setTimeout(r, 100));
    return out;
  }
  const logsIn = async (address: string, isid: number): Promise<boolean> => {
    const ini = await TestInitiator.connect(small.port, '127.0.0.1', address);
    const r = await ini.login({ isid: Buffer.from([0x80, 0, 0, 0, 0x31, isid]) }).catch(() => ({ status: -1 }));
    ini.close();
    return r.status === 0;
  };

  it('hold their slots only until the login timeout, and other initiators log in meanwhile', async () => {
    const t0 = Date.now();
    const a = await stallers('127.0.0.2', 3);
    // A fourth from that address is refused; another host still logs in.
    const fourth = await TestInitiator.connect(small.port, '127.0.0.1', '127.0.0.2');
    expect(await fourth.waitClosed(1000)).toBe(true);
    expect(await logsIn('127.0.0.1', 1)).toBe(true);
    // Two more hosts fill the server's slots: now nobody gets in until the login timeout frees them.
    const b = await stallers('127.0.0.3', 2);
    expect(await logsIn('127.0.0.4', 2)).toBe(false);
    for (const ini of [...a, ...b]) expect(await ini.waitClosed(2000 + 2000 - (Date.now() - t0)), 'closed by the 2 s login timeout').toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(await logsIn('127.0.0.4', 3)).toBe(true);
    expect(await logsIn('127.0.0.2', 4), 'the stalled address has its slots back').toBe(true);
  });
});

describe('Login Responses longer than 8192 bytes (RFC 7143 §11.13.3, §13.12)', () => {
  it('are split with the C bit and continued on the initiator\'s empty Login Requests', async () => {
    const ini = await TestInitiator.connect(srv.port);
    const r = await ini.loginStep(ISID, 0, 0, 1, true, [['InitiatorName', 'iqn.2007-10.com.example:long'], ['TargetName', TEST_TARGET], ['AuthMethod', 'None']]);
    expect(r.status).toBe(0);
    // 700 unknown keys (about 21 KiB of answers), offered in C-bit PDUs of at most 8192 bytes.
    const keys: Array<[string, string]> = Array.from({ length: 700 }, (_, i) => [`X-com.example.k${String(i).padStart(4, '0')}`, 'v']);
    keys.push(['MaxRecvDataSegmentLength', '8192'], ['HeaderDigest', 'None'], ['DataDigest', 'None']);
    const text = encodeText(keys);
    for (let off = 0; off < text.length; off += 8192) {
      const last = off + 8192 >= text.length;
      await ini.sendPdu(loginHeader({ csg: 1, nsg: 3, transit: last, cont: !last }), text.subarray(off, off + 8192));
      const res = (await ini.next())!;
      if (!last) {
        expect(status(res)).toBe(0);
        expect(res.data.length).toBe(0);
      } else {
        const answers: Buffer[] = [];
        let cur = res;
        for (let guard = 0; guard < 10; guard++) {
          expect(cur.opcode).toBe(Opcode.LoginResponse);
          expect(status(cur)).toBe(0);
          expect(cur.data.length).toBeLessThanOrEqual(8192);
          answers.push(Buffer.from(cur.data));
          if (!cur.loginContinue) break;
          expect(cur.loginTransit).toBe(false); // §11.13.3: C=1 goes with T=0
          await ini.sendPdu(loginHeader({ csg: 1, nsg: 3, transit: true }));
          cur = (await ini.next())!;
        }
        expect(answers.length).toBeGreaterThan(2);
        expect(cur.loginContinue).toBe(false);
        expect(cur.loginTransit).toBe(true);
        expect(cur.loginNsg).toBe(3);
        expect(cur.tsih).not.toBe(0);
        const pairs = decodeText(Buffer.concat(answers));
        expect(pairs.filter(([, v]) => v === 'NotUnderstood')).toHaveLength(700);
      }
    }
    ini.expStatSN = ini.expStatSN >>> 0;
    expect((await ini.nopOut()).opcode).toBe(Opcode.NopIn);
    ini.close();
  });
});
