/**
 * The text key=value codec (src/pdu/text.ts) on arbitrary bytes. Properties: decodeText either
 * returns pairs or throws TextFormatError (nothing else); what it decodes re-encodes to bytes
 * that decode to the same pairs, within the RFC 7143 §6.1 limits it enforces.
 */
import { isDeepStrictEqual } from 'node:util';
import { decodeText, encodeText, MAX_KEY_LENGTH, TextFormatError, type TextPairs } from '../../../src/pdu/text.js';
import type { FuzzTarget } from '../engine/fuzz-target.js';
import { text } from './wire.js';

function decodeOrNull(data: Buffer): TextPairs | null {
  try {
    return decodeText(data);
  } catch (error) {
    if (error instanceof TextFormatError) return null;
    throw error;
  }
}

export const target: FuzzTarget = {
  name: 'text',
  maxLength: 20000,
  seeds: [
    text({ InitiatorName: 'iqn.1994-05.com.redhat:node-a', TargetName: 'iqn.2016-06.org.gluster:t1', SessionType: 'Normal', AuthMethod: 'CHAP,None' }),
    text({ CHAP_A: '5', CHAP_N: 'user-a', CHAP_R: '0x' + 'ab'.repeat(16), CHAP_I: '1', CHAP_C: '0x' + '01'.repeat(64) }),
    text({ HeaderDigest: 'CRC32C,None', MaxRecvDataSegmentLength: '262144', 'X-com.example.key': 'ä€' }),
    Buffer.from('SendTargets=All\0\0\0', 'utf8'),
  ],
  run(input) {
    const pairs = decodeOrNull(input);
    if (pairs === null) return;
    for (const [key] of pairs) {
      if (key.length === 0 || key.length > MAX_KEY_LENGTH) throw new Error(`decoded a key of ${key.length} characters`);
    }
    const again = decodeText(encodeText(pairs));
    if (!isDeepStrictEqual(again, pairs)) {
      throw new Error(`re-encoding changed the pairs: ${JSON.stringify(pairs)} -> ${JSON.stringify(again)}`);
    }
  },
};
