/**
 * LoginHandler.handle (src/iscsi/login.ts) fed arbitrary Login Request sequences, against one
 * target whose ACL has a CHAP entry (mutual), an open entry, and discovery with CHAP.
 * Input: up to 4 PDUs, each [opcode][flags (T, C, CSG, NSG)][version-max][version-min][TSIH: 2]
 * [text length: 2][text]. Properties: every call resolves (no rejection, no hang) to a Login
 * Response with a status of RFC 7143 §11.13.5; no TargetError (class 3 detail 0: what an
 * unexpected exception becomes) where the server has everything it needs; the response text decodes.
 */
import { AuthService } from '../../../src/auth/service.js';
import type { IscsiSettings, TargetDefinition } from '../../../src/config/types.js';
import { LoginStatus, LoginFailure } from '../../../src/iscsi/login-status.js';
import { LoginHandler, type LoginContext } from '../../../src/iscsi/login.js';
import type { Session } from '../../../src/iscsi/session.js';
import { TargetNode } from '../../../src/iscsi/target-node.js';
import { Pdu } from '../../../src/pdu/pdu.js';
import { decodeText } from '../../../src/pdu/text.js';
import { MemoryBackend } from '../../../src/backend/memory-backend.js';
import { LogicalUnit } from '../../../src/scsi/logical-unit.js';
import { ScsiDevice } from '../../../src/scsi/scsi-device.js';
import type { FuzzTarget } from '../engine/fuzz-target.js';
import { text } from './wire.js';

const TARGET = 'iqn.2024-01.fuzz:target';
const CHAP_INITIATOR = 'iqn.2024-01.fuzz:chap';
const OPEN_INITIATOR = 'iqn.2024-01.fuzz:open';

const SETTINGS: IscsiSettings = {
  cmdWindow: 128, maxRecvDataSegmentLength: 262144, maxBurstLength: 1048576, firstBurstLength: 262144,
  maxOutstandingR2T: 8, immediateData: true, initialR2T: false, headerDigest: ['None', 'CRC32C'], dataDigest: ['None', 'CRC32C'],
  loginTimeout: 15, nopInInterval: 0, nopInTimeout: 10, maxPendingLogins: 64, defaultTime2Wait: 2, defaultTime2Retain: 0,
  authBackoffAfter: 0,
};

const DEFINITION: TargetDefinition = {
  iqn: TARGET,
  alias: 'fuzz',
  luns: [],
  acl: [
    { initiator: CHAP_INITIATOR, readOnly: false, chap: { username: 'user', secret: 'chap-secret-1', mutual: { username: 'tgt', secret: 'mutual-secret-2' } } },
    { initiator: OPEN_INITIATOR, readOnly: true },
  ],
};
const discovery = { chap: { username: 'disc', secret: 'discovery-secret' } };

const auth = new AuthService(SETTINGS);
auth.install(await auth.prepare({ targets: [DEFINITION], discovery }), { iscsi: SETTINGS, discovery });
const lu = new LogicalUnit({
  lun: 0, backend: new MemoryBackend(64 * 512), blockSize: 512, readOnly: false, writeCache: true, serial: 'FUZZ',
  naa: '6001405abcdef0123456789abcdef012', vendor: 'GLFS', product: 'glfs-target', revision: '0.1', targetName: TARGET,
});
const node = new TargetNode(DEFINITION, new ScsiDevice([lu]));

const context: LoginContext = {
  settings: SETTINGS,
  portal: { host: '127.0.0.1', port: 3260, tpgt: 1 },
  auth,
  remoteAddress: '127.0.0.1',
  findTarget: (iqn) => (iqn === TARGET ? node : undefined),
  establish: async () => ({ tsih: 1 }) as Session,
  checkExistingSession: (tsih) => {
    if (tsih !== 1) throw new LoginFailure(LoginStatus.SessionDoesNotExist, `no session ${tsih}`);
  },
};

const STATUS_DETAILS = new Map<number, Set<number>>([[0, new Set([0])], [1, new Set([1, 2])], [2, new Set()], [3, new Set()]]);
for (const [cls, detail] of Object.values(LoginStatus)) STATUS_DETAILS.get(cls)!.add(detail);

function* requests(input: Buffer): Generator<Pdu> {
  let at = 0;
  for (let n = 0; n < 4 && at + 8 <= input.length; n++) {
    const bhs = Buffer.alloc(48);
    bhs[0] = input[at]!;
    bhs[1] = input[at + 1]!;
    bhs[2] = input[at + 2]!;
    bhs[3] = input[at + 3]!;
    bhs.writeUIntBE(0x400001370000, 8, 6); // ISID
    bhs[14] = input[at + 4]!;
    bhs[15] = input[at + 5]!;
    bhs.writeUInt32BE(n + 1, 16); // ITT
    bhs.writeUInt32BE(7, 24); // CmdSN
    const length = input.readUInt16BE(at + 6);
    const data = input.subarray(at + 8, at + 8 + length);
    bhs.writeUIntBE(data.length, 5, 3);
    at += 8 + length;
    yield new Pdu(bhs, null, Buffer.from(data));
  }
}

function request(op: number, flags: number, pairs: Record<string, string>, tsih = 0): Buffer {
  const data = text(pairs);
  return Buffer.concat([Buffer.from([op, flags, 0, 0, tsih >> 8, tsih & 0xff, data.length >> 8, data.length & 0xff]), data]);
}

export const target: FuzzTarget = {
  name: 'login',
  maxLength: 4096,
  seeds: [
    // Straight to full feature phase, no authentication (CSG 1 → NSG 3, T).
    request(0x43, 0x87, { InitiatorName: OPEN_INITIATOR, TargetName: TARGET, SessionType: 'Normal', HeaderDigest: 'None', MaxRecvDataSegmentLength: '65536' }),
    // Security stage with CHAP, then a response.
    Buffer.concat([
      request(0x43, 0x01, { InitiatorName: CHAP_INITIATOR, TargetName: TARGET, AuthMethod: 'CHAP,None' }),
      request(0x43, 0x01, { CHAP_A: '5' }),
      request(0x43, 0x81, { CHAP_N: 'user', CHAP_R: '0x' + '00'.repeat(16), CHAP_I: '1', CHAP_C: '0x' + 'ab'.repeat(16) }),
    ]),
    // Discovery, C bit continuation, reinstatement attempt.
    request(0x43, 0x87, { InitiatorName: OPEN_INITIATOR, SessionType: 'Discovery', AuthMethod: 'None' }),
    Buffer.concat([
      request(0x43, 0x44, { InitiatorName: OPEN_INITIATOR }, 1),
      request(0x43, 0x84, { TargetName: TARGET, InitialR2T: 'No', ImmediateData: 'Yes', ErrorRecoveryLevel: '0' }, 1),
    ]),
  ],
  async run(input) {
    const handler = new LoginHandler(context);
    for (const pdu of requests(input)) {
      const reply = await handler.handle(pdu);
      if (reply.header.length < 48 || (reply.header[0]! & 0x3f) !== 0x23) throw new Error('the reply is not a Login Response BHS');
      const cls = reply.header[36]!;
      const detail = reply.header[37]!;
      if (!STATUS_DETAILS.get(cls)?.has(detail)) throw new Error(`status ${cls}/${detail} is not in RFC 7143 §11.13.5`);
      if (cls === 3 && detail === 0) throw new Error(`target error (an unexpected exception?): ${reply.done?.ok === false ? reply.done.failure.message : ''}`);
      if (reply.data !== undefined && reply.data.length > 0) decodeText(reply.data);
      if (reply.done !== undefined || cls !== 0) return;
    }
  },
};
