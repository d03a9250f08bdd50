/**
 * Text key=value codec for Login and Text PDUs (RFC 7143 §6.1): UTF-8 `key=value` pairs, each
 * terminated by a NUL. Keys are at most 63 bytes of [A-Za-z0-9.-+@_] ; values at most 255 bytes
 * unless the key's definition allows more (§6.1: 8192 for the binary CHAP values and TargetAddress
 * lists handled by their own keys).
 */
export const MAX_KEY_LENGTH = 63;
export const MAX_VALUE_LENGTH = 255;
/** CHAP_C / CHAP_R carry large binary values (RFC 7143 §6.1: up to 8192 bytes). */
const LONG_VALUE_KEYS = new Set(['CHAP_C', 'CHAP_R', 'TargetAddress', 'SendTargets', 'TargetName', 'InitiatorName']);
const LONG_VALUE_LIMIT = 8192;
const KEY_PATTERN = /^[A-Za-z0-9.\-+@_]+$/;

export class TextFormatError extends Error {}

export type TextPairs = Array<[string, string]>;

/** Decode a text data segment. Throws TextFormatError for a malformed pair. */
export function decodeText(data: Buffer): TextPairs {
  const pairs: TextPairs = [];
  let start = 0;
  // A trailing segment without a terminating NUL is malformed (§6.1: every pair ends with NUL),
  // except for padding zeros, which are not part of the data segment.
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end === -1) throw new TextFormatError('key=value pair not terminated by NUL');
    if (end === start) { start = end + 1; continue; } // tolerate empty strings between pairs
    const pair = data.toString('utf8', start, end);
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new TextFormatError(`malformed text pair (no key=value): ${truncate(pair)}`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (key.length > MAX_KEY_LENGTH || !KEY_PATTERN.test(key)) {
      throw new TextFormatError(`invalid key name: ${truncate(key)}`);
    }
    const limit = LONG_VALUE_KEYS.has(key) ? LONG_VALUE_LIMIT : MAX_VALUE_LENGTH;
    if (Buffer.byteLength(value) > limit) throw new TextFormatError(`value of ${key} exceeds ${limit} bytes`);
    pairs.push([key, value]);
    start = end + 1;
  }
  return pairs;
}

export function encodeText(pairs: Iterable<readonly [string, string]>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of pairs) parts.push(`${k}=${v}\0`);
  return Buffer.from(parts.join(''), 'utf8');
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
