/**
 * One hostile connection: sometimes a valid login (digests on or off), then mutated PDUs
 * (pdu-mutations.ts); everything the server answers must frame cleanly as a target PDU.
 */
import { PduFramer } from '../../../src/pdu/framer.js';
import { BufferPool } from '../../../src/pdu/buffer-pool.js';
import type { Prng } from '../engine/mutate.js';
import { TestInitiator } from '../../support/test-initiator.js';
import { mutatedRequest, type SessionNumbers } from './pdu-mutations.js';

/** Opcodes a target sends (RFC 7143 §11.1): NOP-In … Logout Response, R2T, Async Message, Reject. */
const TARGET_OPCODES = new Set([0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3f]);
const MAX_RECV = 262144;

/** Watches the server's byte stream with a framer of its own; `problem` says what did not parse. */
class ResponseWatch {
  problem: string | null = null;
  responses = 0;
  readonly framer = new PduFramer(
    (pdu) => {
      this.responses++;
      if (!TARGET_OPCODES.has(pdu.opcode)) this.problem ??= `server sent opcode 0x${pdu.opcode.toString(16)}`;
    },
    (error) => { this.problem ??= `server output did not frame: ${error.message}`; },
    new BufferPool(),
  );
  constructor() { this.framer.maxDataSegmentLength = MAX_RECV; }
}

export async function hostileConnection(port: number, target: string, rng: Prng): Promise<{ problem: string | null; responses: number }> {
  const ini = await TestInitiator.connect(port);
  const watch = new ResponseWatch();
  ini.socket.on('data', (chunk: Buffer) => watch.framer.push(chunk));
  try {
    const numbers: SessionNumbers = { cmdSN: 1, expStatSN: 0, itt: 1000, headerDigest: false, dataDigest: false };
    if (rng.chance(0.7)) {
      const digests = { HeaderDigest: rng.chance(0.5) ? 'CRC32C' : 'None', DataDigest: rng.chance(0.5) ? 'CRC32C' : 'None' };
      const res = await ini.login({ targetName: target, isid: Buffer.from([0x80, 0, 0, 0, rng.below(256), rng.below(256)]), keys: { ...digests, MaxRecvDataSegmentLength: String(MAX_RECV) } });
      if (res.status === 0) {
        watch.framer.headerDigest = ini.headerDigest;
        watch.framer.dataDigest = ini.dataDigest;
        Object.assign(numbers, { cmdSN: ini.cmdSN, expStatSN: ini.expStatSN, headerDigest: ini.headerDigest, dataDigest: ini.dataDigest });
      }
    }
    for (let n = 1 + rng.below(24); n > 0 && !ini.closed; n--) {
      ini.socket.write(mutatedRequest(rng, numbers));
      if (rng.chance(0.2)) await new Promise((r) => setTimeout(r, rng.below(5)));
    }
    await new Promise((r) => setTimeout(r, 20 + rng.below(60)));
  } catch {
    // The server closed on us mid-login or mid-write: a legitimate answer to hostile input.
  } finally {
    ini.close();
  }
  return { problem: watch.problem, responses: watch.responses };
}
