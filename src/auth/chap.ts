/**
 * CHAP for iSCSI (RFC 7143 §12.1.3, RFC 1994), target side.
 *
 *   I→T  AuthMethod=CHAP,…                 T→I  AuthMethod=CHAP
 *   I→T  CHAP_A=<A1,A2,…>                  T→I  CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
 *   I→T  CHAP_N=<N> CHAP_R=<R>             T→I  (one-way: nothing)
 *        [CHAP_I=<I'> CHAP_C=<C'>]              (mutual: CHAP_N=<N'> CHAP_R=<R'>)
 *
 * R = H(I || secret || C) with H the negotiated algorithm: SHA3-256 (8), SHA-256 (7), SHA-1 (6)
 * or MD5 (5) (RFC 7143 §12.1.3 and its IANA registry; what LIO and open-iscsi implement). The
 * target picks the strongest algorithm the initiator lists, uses a fresh random identifier and
 * a fresh random challenge as long as the digest (at least 16 bytes) per login, checks CHAP_N,
 * compares the response in constant time, and accepts binary values in hex ("0x") and base64
 * ("0b") (RFC 7143 §6.1). It answers a mutual challenge only after the initiator has proven its
 * own secret, and never a challenge equal to the one it sent (reflection).
 *
 * Errors are ChapError with a message fit for a log line: never a secret, challenge or response.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ResolvedChap } from '../config/chap.js';

export interface ChapAlgorithm {
  /** CHAP_A value. */
  readonly id: number;
  readonly name: string;
  /** Node crypto hash name. */
  readonly hash: string;
  readonly digestLength: number;
}

/** Supported algorithms, strongest first (the order the target prefers them in). */
export const CHAP_ALGORITHMS: readonly ChapAlgorithm[] = [
  { id: 8, name: 'SHA3-256', hash: 'sha3-256', digestLength: 32 },
  { id: 7, name: 'SHA-256', hash: 'sha256', digestLength: 32 },
  { id: 6, name: 'SHA-1', hash: 'sha1', digestLength: 20 },
  { id: 5, name: 'MD5', hash: 'md5', digestLength: 16 },
];

/** Shortest challenge the target sends (RFC 7143 §12.1.3: at least 16 bytes for MD5). */
export const MIN_CHALLENGE_BYTES = 16;
/** Longest challenge accepted from an initiator (RFC 7143 §12.1.3: CHAP_C at most 1024 bytes). */
export const MAX_CHALLENGE_BYTES = 1024;

export class ChapError extends Error {}

/** H(id || secret || challenge) — the CHAP response (RFC 1994 §4.1). */
export function chapResponse(algorithm: ChapAlgorithm, id: number, secret: Buffer, challenge: Buffer): Buffer {
  return createHash(algorithm.hash).update(Buffer.of(id & 0xff)).update(secret).update(challenge).digest();
}

/**
 * Choose from a CHAP_A list ("7,5" …): the strongest supported algorithm the initiator offers.
 * Unknown values (and RFC 7143 §6.1 "Reject"-style junk) are ignored; undefined when none fits.
 */
export function selectAlgorithm(offered: string, supported: readonly ChapAlgorithm[] = CHAP_ALGORITHMS): ChapAlgorithm | undefined {
  const ids = new Set<number>();
  for (const v of offered.split(',')) {
    const t = v.trim();
    if (/^[0-9]{1,3}$/.test(t)) ids.add(Number(t));
    else if (/^0[xX][0-9a-fA-F]{1,2}$/.test(t)) ids.add(Number.parseInt(t.slice(2), 16));
  }
  return supported.find((a) => ids.has(a.id));
}

/**
 * Decode a binary-value (RFC 7143 §6.1 / §5.1): "0x"/"0X" + hex digits (an odd count is read as
 * a number, i.e. with a leading zero nibble) or "0b"/"0B" + base64. Undefined if malformed or empty.
 */
export function decodeBinary(value: string): Buffer | undefined {
  if (value.length < 3 || value[0] !== '0') return undefined;
  const prefix = value[1];
  const body = value.slice(2);
  if (prefix === 'x' || prefix === 'X') {
    if (!/^[0-9a-fA-F]+$/.test(body)) return undefined;
    return Buffer.from(body.length % 2 === 1 ? `0${body}` : body, 'hex');
  }
  if (prefix === 'b' || prefix === 'B') {
    if (body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return undefined;
    const bytes = Buffer.from(body, 'base64');
    // Reject non-canonical encodings (stray bits in the last character).
    if (bytes.length === 0 || bytes.toString('base64') !== body) return undefined;
    return bytes;
  }
  return undefined;
}

/** Binary value as the target sends it: "0x" + lower-case hex. */
export function encodeHex(bytes: Buffer): string {
  return `0x${bytes.toString('hex')}`;
}

/** CHAP_I: a number 0–255, decimal or "0x" hex (RFC 7143 §5.1 numerical values). */
export function decodeIdentifier(value: string): number | undefined {
  let n: number;
  if (/^[0-9]{1,3}$/.test(value)) n = Number(value);
  else if (/^0[xX][0-9a-fA-F]{1,2}$/.test(value)) n = Number.parseInt(value.slice(2), 16);
  else return undefined;
  return n <= 255 ? n : undefined;
}

/** The CHAP keys of one login request, each at most once. */
export interface ChapKeys {
  CHAP_A?: string;
  CHAP_I?: string;
  CHAP_C?: string;
  CHAP_N?: string;
  CHAP_R?: string;
}

export type ChapState = 'algorithm' | 'response' | 'done';

export interface ChapExchangeOptions {
  /** Algorithms the target accepts, strongest first. Default CHAP_ALGORITHMS. */
  algorithms?: readonly ChapAlgorithm[];
  /** Source of randomness (tests). */
  random?: (bytes: number) => Buffer;
}

/**
 * The target side of one CHAP exchange. Call algorithm() with the initiator's CHAP_A, then
 * response() with its CHAP_N/CHAP_R (and CHAP_I/CHAP_C for mutual CHAP).
 */
export class ChapExchange {
  private _state: ChapState = 'algorithm';
  private alg: ChapAlgorithm | undefined;
  private id = 0;
  private challenge: Buffer = Buffer.alloc(0);
  private readonly algorithms: readonly ChapAlgorithm[];
  private readonly random: (bytes: number) => Buffer;
  /** Set when the initiator asked the target to authenticate itself. */
  mutual = false;

  constructor(
    private readonly creds: ResolvedChap,
    opts: ChapExchangeOptions = {},
  ) {
    this.algorithms = opts.algorithms ?? CHAP_ALGORITHMS;
    this.random = opts.random ?? ((n) => randomBytes(n));
  }

  get state(): ChapState {
    return this._state;
  }

  get algorithm(): ChapAlgorithm | undefined {
    return this.alg;
  }

  /** Step 1: CHAP_A list → CHAP_A, CHAP_I, CHAP_C. */
  selectAlgorithm(offered: string): Array<[string, string]> {
    if (this._state !== 'algorithm') throw new ChapError('CHAP_A sent twice');
    const alg = selectAlgorithm(offered, this.algorithms);
    if (alg === undefined) {
      throw new ChapError(`no supported CHAP algorithm offered (CHAP_A=${offered.slice(0, 40)}; supported: ${this.algorithms.map((a) => a.id).join(',')})`);
    }
    this.alg = alg;
    this.id = this.random(1)[0]!;
    this.challenge = Buffer.from(this.random(Math.max(MIN_CHALLENGE_BYTES, alg.digestLength)));
    this._state = 'response';
    return [
      ['CHAP_A', String(alg.id)],
      ['CHAP_I', String(this.id)],
      ['CHAP_C', encodeHex(this.challenge)],
    ];
  }

  /**
   * Step 2: check CHAP_N/CHAP_R; for mutual CHAP (CHAP_I and CHAP_C present) answer with the
   * target's CHAP_N/CHAP_R. Throws ChapError when the initiator is not authenticated.
   */
  verify(keys: ChapKeys): Array<[string, string]> {
    if (this._state !== 'response' || this.alg === undefined) throw new ChapError('CHAP response before the challenge');
    const alg = this.alg;
    if (keys.CHAP_A !== undefined) throw new ChapError('CHAP_A sent again with the response');
    if (keys.CHAP_N === undefined || keys.CHAP_R === undefined) {
      throw new ChapError(`CHAP_N and CHAP_R required after the challenge (missing ${keys.CHAP_N === undefined ? 'CHAP_N' : 'CHAP_R'})`);
    }
    const wantMutual = keys.CHAP_I !== undefined || keys.CHAP_C !== undefined;
    if (wantMutual && (keys.CHAP_I === undefined || keys.CHAP_C === undefined)) {
      throw new ChapError(`mutual CHAP needs both CHAP_I and CHAP_C (missing ${keys.CHAP_I === undefined ? 'CHAP_I' : 'CHAP_C'})`);
    }
    this._state = 'done';
    const received = decodeBinary(keys.CHAP_R);
    const expected = chapResponse(alg, this.id, this.creds.secret, this.challenge);
    // Compare in constant time; a wrong length is not secret (every response of an algorithm has the same length).
    const responseOk = received !== undefined && received.length === expected.length && timingSafeEqual(received, expected);
    const nameOk = keys.CHAP_N === this.creds.username;
    if (!nameOk) throw new ChapError('CHAP_N does not match the configured user name');
    if (received === undefined) throw new ChapError('CHAP_R is not a hex (0x) or base64 (0b) value');
    if (!responseOk) throw new ChapError(`wrong CHAP response (${alg.name})`);
    if (!wantMutual) return [];

    // Mutual CHAP: the initiator has proven its secret; now prove ours.
    this.mutual = true;
    const mutual = this.creds.mutual;
    if (mutual === undefined) throw new ChapError('initiator requested mutual CHAP, but no mutual credentials are configured for it');
    const id = decodeIdentifier(keys.CHAP_I!);
    if (id === undefined) throw new ChapError('CHAP_I is not a number from 0 to 255');
    const challenge = decodeBinary(keys.CHAP_C!);
    if (challenge === undefined) throw new ChapError('CHAP_C is not a hex (0x) or base64 (0b) value');
    if (challenge.length > MAX_CHALLENGE_BYTES) throw new ChapError(`CHAP_C longer than ${MAX_CHALLENGE_BYTES} bytes`);
    if (challenge.equals(this.challenge)) throw new ChapError('CHAP_C equals the challenge the target sent (reflection attack)');
    return [
      ['CHAP_N', mutual.username],
      ['CHAP_R', encodeHex(chapResponse(alg, id, mutual.secret, challenge))],
    ];
  }
}
