import { describe, expect, it } from 'vitest';
import {
  CHAP_ALGORITHMS, ChapError, ChapExchange, chapResponse, decodeBinary, decodeIdentifier, encodeHex, selectAlgorithm,
  type ChapAlgorithm,
} from '../../src/auth/chap.js';
import type { ResolvedChap } from '../../src/config/chap.js';

/**
 * Vectors computed independently with OpenSSL:
 *   S='glfs-chap-secret-1'; C=000102…1f (32 bytes)
 *   { printf '\x2a'; printf '%s' "$S"; echo -n $C | xxd -r -p; } | openssl dgst -<alg> -binary | xxd -p -c 64
 */
const SECRET = Buffer.from('glfs-chap-secret-1');
const CHALLENGE = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const VECTORS: Record<number, string> = {
  5: '615e40cb490e872554e5d95b1c8efd6a',
  6: 'bc79128fc69796ae2e3ac57fd52e6a80805b67b0',
  7: '0194a1cbb652af1052b93cc5d1dd5823391951209f06396d469da8ce2f390842',
  8: 'dbe4925d48f92d5f83f78cab204e967fc27718279075a4c69aa28f1740b4a466',
};
/**
 * Mutual direction, id 255, secret 'mutual-target-secret', challenge 00112233…ff (16 bytes):
 *   { printf '\xff'; printf '%s' 'mutual-target-secret'; echo -n $C2 | xxd -r -p; } | openssl dgst -md5|-sha3-256 …
 */
const MUTUAL_SECRET = 'mutual-target-secret';
const MUTUAL_CHALLENGE = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const MUTUAL_VECTORS: Record<number, string> = {
  5: 'fbe2edf0e4b9961d102c4cbda2675667',
  8: '9d30aec514b6c16b2a56f1f9a6b78a37de35f800faa4909693268843b3cc5d01',
};

const alg = (id: number): ChapAlgorithm => CHAP_ALGORITHMS.find((a) => a.id === id)!;

const CREDS: ResolvedChap = {
  username: 'node-user',
  secret: SECRET,
  mutual: { username: 'target-user', secret: Buffer.from(MUTUAL_SECRET) },
};

/** Randomness that yields identifier 0x2a and then the fixed challenge (truncated/extended as asked). */
function fixedRandom(): (n: number) => Buffer {
  return (n) => (n === 1 ? Buffer.of(0x2a) : Buffer.concat([CHALLENGE, CHALLENGE]).subarray(0, n));
}

describe('CHAP response (RFC 1994: H(id || secret || challenge))', () => {
  it.each(Object.entries(VECTORS))('CHAP_A=%s matches openssl', (id, hex) => {
    expect(chapResponse(alg(Number(id)), 0x2a, SECRET, CHALLENGE).toString('hex')).toBe(hex);
  });

  it.each(Object.entries(MUTUAL_VECTORS))('mutual vector CHAP_A=%s matches openssl', (id, hex) => {
    expect(chapResponse(alg(Number(id)), 255, Buffer.from(MUTUAL_SECRET), MUTUAL_CHALLENGE).toString('hex')).toBe(hex);
  });

  it('offers SHA3-256, SHA-256, SHA-1, MD5, strongest first', () => {
    expect(CHAP_ALGORITHMS.map((a) => [a.id, a.digestLength])).toEqual([[8, 32], [7, 32], [6, 20], [5, 16]]);
  });
});

describe('binary values (RFC 7143 §6.1)', () => {
  it('decodes hex in either case and with either prefix case', () => {
    expect(decodeBinary('0x00ff10')!.toString('hex')).toBe('00ff10');
    expect(decodeBinary('0XABcd')!.toString('hex')).toBe('abcd');
  });
  it('reads an odd number of hex digits as a number (leading zero nibble)', () => {
    expect(decodeBinary('0xabc')!.toString('hex')).toBe('0abc');
  });
  it('decodes base64 with 0b / 0B', () => {
    expect(decodeBinary('0bAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=')!.equals(CHALLENGE)).toBe(true);
    expect(decodeBinary('0BAP8Q')!.toString('hex')).toBe('00ff10');
  });
  it.each(['', '0x', '0b', 'abcd', '1xab', '0xzz', '0x12 34', '0bAAE', '0bAAF=', '0b====', '0b!!!!', '0cab'])('rejects %j', (v) => {
    expect(decodeBinary(v)).toBeUndefined();
  });
  it('encodes as 0x + lower-case hex', () => {
    expect(encodeHex(Buffer.from([0xab, 0x01]))).toBe('0xab01');
  });
  it('CHAP_I is 0..255, decimal or hex', () => {
    expect(decodeIdentifier('0')).toBe(0);
    expect(decodeIdentifier('255')).toBe(255);
    expect(decodeIdentifier('0xff')).toBe(255);
    expect(decodeIdentifier('256')).toBeUndefined();
    expect(decodeIdentifier('-1')).toBeUndefined();
    expect(decodeIdentifier('')).toBeUndefined();
    expect(decodeIdentifier('1e2')).toBeUndefined();
  });
});

describe('CHAP_A negotiation', () => {
  it.each([
    ['5', 5], ['7,5', 7], ['5,7', 7], ['8,7,6,5', 8], ['5,6', 6], ['6', 6], ['9,5', 5], ['abc,5', 5], ['0x7', 7], [' 7 , 5', 7],
  ])('%j → %i (the strongest offered)', (offered, id) => {
    expect(selectAlgorithm(offered as string)?.id).toBe(id);
  });
  it.each(['', '4', '9,10', 'MD5', 'None', '1000'])('%j → none', (offered) => {
    expect(selectAlgorithm(offered)).toBeUndefined();
  });
  it('honours a restricted algorithm set', () => {
    expect(selectAlgorithm('5,7', [alg(5)])?.id).toBe(5);
    expect(selectAlgorithm('7', [alg(5)])).toBeUndefined();
  });
});

describe('ChapExchange', () => {
  it.each([[5, 16], [6, 20], [7, 32], [8, 32]])('CHAP_A=%i: challenge of %i bytes, response checked', (id, len) => {
    const x = new ChapExchange(CREDS, { random: fixedRandom() });
    const pairs = x.selectAlgorithm(String(id));
    expect(pairs[0]).toEqual(['CHAP_A', String(id)]);
    expect(pairs[1]).toEqual(['CHAP_I', '42']);
    const c = decodeBinary(pairs[2]![1])!;
    expect(c.length).toBe(len);
    const r = chapResponse(alg(id), 42, SECRET, c);
    expect(x.verify({ CHAP_N: 'node-user', CHAP_R: encodeHex(r) })).toEqual([]);
    expect(x.state).toBe('done');
  });

  it('accepts the independently computed vector in hex and in base64', () => {
    for (const enc of ['hex', 'base64'] as const) {
      const x = new ChapExchange(CREDS, { random: fixedRandom() });
      x.selectAlgorithm('8');
      const r = Buffer.from(VECTORS[8]!, 'hex');
      expect(x.verify({ CHAP_N: 'node-user', CHAP_R: enc === 'hex' ? `0X${r.toString('hex').toUpperCase()}` : `0b${r.toString('base64')}` })).toEqual([]);
    }
  });

  it('uses a fresh random identifier and challenge per exchange', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const pairs = new ChapExchange(CREDS).selectAlgorithm('5');
      seen.add(`${pairs[1]![1]}/${pairs[2]![1]}`);
      expect(decodeBinary(pairs[2]![1])!.length).toBe(16);
    }
    expect(seen.size).toBe(20);
  });

  const failing = (keys: Record<string, string>, id = 5): string => {
    const x = new ChapExchange(CREDS, { random: fixedRandom() });
    x.selectAlgorithm(String(id));
    try {
      x.verify(keys);
    } catch (e) {
      expect(e).toBeInstanceOf(ChapError);
      return (e as Error).message;
    }
    throw new Error('verify did not fail');
  };
  const good = (id = 5) => encodeHex(Buffer.from(VECTORS[id]!, 'hex').subarray(0, alg(id).digestLength));
  // With fixedRandom the MD5 challenge is the first 16 bytes of CHALLENGE: recompute for it.
  const goodMd5 = () => encodeHex(chapResponse(alg(5), 0x2a, SECRET, CHALLENGE.subarray(0, 16)));

  it('refuses a wrong CHAP_N (even with the right response)', () => {
    expect(failing({ CHAP_N: 'other', CHAP_R: goodMd5() })).toMatch(/CHAP_N does not match/);
  });
  it('refuses a wrong response, a truncated one, and a malformed one', () => {
    const wrong = chapResponse(alg(5), 0x2a, Buffer.from('another-initiators-secret'), CHALLENGE.subarray(0, 16));
    expect(failing({ CHAP_N: 'node-user', CHAP_R: encodeHex(wrong) })).toMatch(/wrong CHAP response \(MD5\)/);
    expect(failing({ CHAP_N: 'node-user', CHAP_R: goodMd5().slice(0, -2) })).toMatch(/wrong CHAP response/);
    expect(failing({ CHAP_N: 'node-user', CHAP_R: 'xyz' })).toMatch(/not a hex \(0x\) or base64/);
  });
  it('refuses a response computed with another algorithm than the negotiated one', () => {
    expect(failing({ CHAP_N: 'node-user', CHAP_R: good(7) }, 8)).toMatch(/wrong CHAP response \(SHA3-256\)/);
  });
  it('requires CHAP_N and CHAP_R', () => {
    expect(failing({ CHAP_N: 'node-user' })).toMatch(/missing CHAP_R/);
    expect(failing({ CHAP_R: goodMd5() })).toMatch(/missing CHAP_N/);
  });
  it('never puts the secret, challenge or response in a message', () => {
    const msgs = [
      failing({ CHAP_N: 'node-user', CHAP_R: '0x00' }),
      failing({ CHAP_N: 'x', CHAP_R: goodMd5() }),
      failing({ CHAP_N: 'node-user', CHAP_R: goodMd5(), CHAP_I: '1', CHAP_C: encodeHex(CHALLENGE.subarray(0, 16)) }),
    ];
    for (const m of msgs) {
      expect(m).not.toContain(SECRET.toString());
      expect(m).not.toContain(CHALLENGE.subarray(0, 16).toString('hex'));
      expect(m).not.toContain(goodMd5().slice(2));
    }
  });

  describe('mutual CHAP', () => {
    it.each([5, 8])('CHAP_A=%i: answers with the target credentials (openssl vector)', (id) => {
      const x = new ChapExchange(CREDS, { random: fixedRandom() });
      const c = decodeBinary(x.selectAlgorithm(String(id))[2]![1])!;
      const out = x.verify({
        CHAP_N: 'node-user', CHAP_R: encodeHex(chapResponse(alg(id), 42, SECRET, c)),
        CHAP_I: '255', CHAP_C: `0b${MUTUAL_CHALLENGE.toString('base64')}`,
      });
      expect(out).toEqual([['CHAP_N', 'target-user'], ['CHAP_R', `0x${MUTUAL_VECTORS[id]}`]]);
      expect(x.mutual).toBe(true);
    });

    it('refuses a reflected challenge (the one the target sent), in any encoding', () => {
      for (const enc of ['hex', 'base64']) {
        const x = new ChapExchange(CREDS, { random: fixedRandom() });
        const c = decodeBinary(x.selectAlgorithm('5')[2]![1])!;
        expect(() => x.verify({
          CHAP_N: 'node-user', CHAP_R: encodeHex(chapResponse(alg(5), 42, SECRET, c)),
          CHAP_I: '42', CHAP_C: enc === 'hex' ? encodeHex(c) : `0b${c.toString('base64')}`,
        })).toThrow(/reflection/);
      }
    });

    it('refuses mutual CHAP when the entry has no mutual credentials', () => {
      const x = new ChapExchange({ username: 'node-user', secret: SECRET }, { random: fixedRandom() });
      const c = decodeBinary(x.selectAlgorithm('5')[2]![1])!;
      expect(() => x.verify({
        CHAP_N: 'node-user', CHAP_R: encodeHex(chapResponse(alg(5), 42, SECRET, c)), CHAP_I: '1', CHAP_C: encodeHex(MUTUAL_CHALLENGE),
      })).toThrow(/no mutual credentials/);
    });

    it('does not answer the mutual challenge unless the initiator authenticated first', () => {
      const x = new ChapExchange(CREDS, { random: fixedRandom() });
      x.selectAlgorithm('5');
      expect(() => x.verify({ CHAP_N: 'node-user', CHAP_R: '0x00', CHAP_I: '1', CHAP_C: encodeHex(MUTUAL_CHALLENGE) })).toThrow(/wrong CHAP response/);
    });

    it('needs both CHAP_I and CHAP_C, and valid ones', () => {
      const run = (extra: Record<string, string>) => {
        const x = new ChapExchange(CREDS, { random: fixedRandom() });
        const c = decodeBinary(x.selectAlgorithm('5')[2]![1])!;
        return () => x.verify({ CHAP_N: 'node-user', CHAP_R: encodeHex(chapResponse(alg(5), 42, SECRET, c)), ...extra });
      };
      expect(run({ CHAP_I: '1' })).toThrow(/missing CHAP_C/);
      expect(run({ CHAP_C: encodeHex(MUTUAL_CHALLENGE) })).toThrow(/missing CHAP_I/);
      expect(run({ CHAP_I: '300', CHAP_C: encodeHex(MUTUAL_CHALLENGE) })).toThrow(/CHAP_I/);
      expect(run({ CHAP_I: '1', CHAP_C: 'hello' })).toThrow(/CHAP_C is not/);
      expect(run({ CHAP_I: '1', CHAP_C: encodeHex(Buffer.alloc(1025, 1)) })).toThrow(/longer than 1024/);
    });
  });

  it('enforces the order: no response before the challenge, no second CHAP_A', () => {
    const x = new ChapExchange(CREDS);
    expect(() => x.verify({ CHAP_N: 'node-user', CHAP_R: '0x00' })).toThrow(ChapError);
    x.selectAlgorithm('5');
    expect(() => x.selectAlgorithm('5')).toThrow(/CHAP_A sent twice/);
  });

  it('refuses a CHAP_A list without a supported algorithm', () => {
    expect(() => new ChapExchange(CREDS).selectAlgorithm('4,9')).toThrow(/no supported CHAP algorithm/);
  });
});
