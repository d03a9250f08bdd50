/**
 * Text Requests in several PDUs (issue 11 #1): each part after the first carries the TTT the
 * target returned (RFC 7143 §11.10.4), and the gathered request is capped at 64 KiB (§6.1).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Opcode } from '../../src/pdu/opcodes.js';
import type { Pdu } from '../../src/pdu/pdu.js';
import { decodeText } from '../../src/pdu/text.js';
import { startInProcessServer, TEST_TARGET, type RunningServer } from '../support/in-process-server.js';
import { TestInitiator } from '../support/test-initiator.js';

let srv: RunningServer;
beforeAll(async () => { srv = await startInProcessServer(); });
afterAll(async () => { await srv.stop(); });

/** A Text Request BHS (§11.10). */
function textHeader(ini: TestInitiator, o: { itt: number; ttt: number; cont: boolean }): Buffer {
  const h = Buffer.alloc(48);
  h[0] = 0x40 | Opcode.TextRequest;
  h[1] = o.cont ? 0x40 : 0x80;
  h.writeUInt32BE(o.itt, 16);
  h.writeUInt32BE(o.ttt, 20);
  h.writeUInt32BE(ini.cmdSN, 24);
  h.writeUInt32BE(ini.expStatSN, 28);
  return h;
}

async function loggedIn(opts: Parameters<TestInitiator['login']>[0] = {}): Promise<TestInitiator> {
  const ini = await TestInitiator.connect(srv.port);
  expect((await ini.login(opts)).status).toBe(0);
  return ini;
}

describe('Text Requests spanning PDUs (RFC 7143 §11.10.4, §6.1)', () => {
  it('continues a request over several PDUs, each after the first carrying the TTT the target returned', async () => {
    const ini = await loggedIn({ sessionType: 'Discovery' });
    const text = Buffer.from('SendTargets=All\0');
    const parts = [text.subarray(0, 7), text.subarray(7, 12), text.subarray(12)];
    let ttt = 0xffffffff;
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      await ini.sendPdu(textHeader(ini, { itt: 0x500, ttt, cont: !last }), parts[i]);
      const res = (await ini.next())!;
      expect(res.opcode).toBe(Opcode.TextResponse);
      if (!last) {
        expect(res.data.length).toBe(0);
        expect(res.targetTransferTag).not.toBe(0xffffffff);
        ttt = res.targetTransferTag;
      } else {
        expect(res.final).toBe(true);
        expect(decodeText(res.data)).toEqual([['TargetName', TEST_TARGET], ['TargetAddress', `127.0.0.1:${srv.port},1`]]);
      }
    }
    ini.close();
  });

  it('rejects a request gathered past 64 KiB (reason 0x0a), drops it, and the session goes on', async () => {
    const ini = await loggedIn({ sessionType: 'Discovery' });
    const chunk = Buffer.alloc(16 * 1024, 0x41); // no NUL: one endless value
    let ttt = 0xffffffff;
    let rejected: Pdu | null = null;
    for (let i = 0; i < 8 && rejected === null; i++) {
      await ini.sendPdu(textHeader(ini, { itt: 0x600, ttt, cont: true }), chunk);
      const res = (await ini.next())!;
      if (res.opcode === Opcode.Reject) rejected = res;
      else ttt = res.targetTransferTag;
    }
    expect(rejected).not.toBeNull();
    expect(rejected!.bhs[2]).toBe(0x0a);
    // The partial request is gone: continuing it is refused, a new request works.
    await ini.sendPdu(textHeader(ini, { itt: 0x600, ttt, cont: false }), Buffer.from('SendTargets=All\0'));
    expect((await ini.next())!.opcode).toBe(Opcode.Reject);
    expect(await ini.text([['SendTargets', 'All']])).toContainEqual(['TargetName', TEST_TARGET]);
    ini.close();
  });

  it('a new request (TTT 0xffffffff) abandons a partial one instead of adding to it', async () => {
    const ini = await loggedIn({ sessionType: 'Discovery' });
    const chunk = Buffer.alloc(32 * 1024, 0x41);
    for (let i = 0; i < 6; i++) {
      await ini.sendPdu(textHeader(ini, { itt: 0x700 + i, ttt: 0xffffffff, cont: true }), chunk);
      const res = (await ini.next())!;
      expect(res.opcode).toBe(Opcode.TextResponse); // never over the cap: each starts afresh
    }
    expect(await ini.text([['SendTargets', 'All']])).toContainEqual(['TargetName', TEST_TARGET]);
    ini.close();
  });
});

