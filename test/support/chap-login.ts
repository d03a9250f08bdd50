/**
 * CHAP logins for protocol tests, driven through TestInitiator.loginStep so that every key of
 * the exchange (RFC 7143 §12.1.3) can be chosen or broken: algorithm list, user name, secret,
 * encoding of CHAP_R, mutual challenge (including reflecting the target's own). The responses
 * are computed here with node:crypto directly, independently of src/auth/chap.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { LoginOptions, TestInitiator } from './test-initiator.js';

const HASHES: Record<string, string> = { '5': 'md5', '6': 'sha1', '7': 'sha256', '8': 'sha3-256' };

export function chapDigest(alg: string, id: number, secret: Buffer | string, challenge: Buffer): Buffer {
  const hash = HASHES[alg];
  if (hash === undefined) throw new Error(`unknown CHAP_A ${alg}`);
  return createHash(hash).update(Buffer.of(id)).update(typeof secret === 'string' ? Buffer.from(secret) : secret).update(challenge).digest();
}

export function parseBinary(v: string): Buffer {
  if (/^0[xX]/.test(v)) return Buffer.from(v.slice(2), 'hex');
  if (/^0[bB]/.test(v)) return Buffer.from(v.slice(2), 'base64');
  throw new Error(`not a binary value: ${v}`);
}

export interface ChapLoginOptions extends LoginOptions {
  /** AuthMethod offered (default "CHAP,None"). */
  authMethod?: string;
  /** CHAP_A list (default "5"). */
  algorithms?: string;
  username?: string;
  secret?: string;
  /** Encoding of CHAP_R (and the mutual CHAP_C). Default hex. */
  encoding?: 'hex' | 'base64';
  /** Ask for mutual CHAP: the target must answer with these credentials. */
  mutual?: { username: string; secret: string; challenge?: Buffer | 'reflect'; id?: number };
  /** Extra keys for the CHAP_N/CHAP_R request (protocol abuse tests). */
  responseExtra?: Array<[string, string]>;
  /** Stop after the security stage (do not negotiate operational keys). */
  securityOnly?: boolean;
}

export interface ChapLoginResult {
  /** Final status (0 = logged in). */
  status: number;
  /** Step whose response carried `status`: 'authmethod' | 'challenge' | 'response' | 'operational'. */
  step: string;
  /** Keys of the target's responses, by step. */
  authMethod?: string;
  algorithm?: string;
  identifier?: number;
  challenge?: Buffer;
  /** Mutual CHAP: did the target's CHAP_N/CHAP_R check out? */
  targetAuthenticated?: boolean;
  responseKeys?: Map<string, string>;
  /** Milliseconds between sending CHAP_N/CHAP_R and the answer, when it was a refusal. */
  refusedAfterMs?: number;
  tsih: number;
}

function encode(b: Buffer, encoding: 'hex' | 'base64' = 'hex'): string {
  return encoding === 'hex' ? `0x${b.toString('hex')}` : `0b${b.toString('base64')}`;
}

/** Security stage with CHAP, then (unless securityOnly) the operational stage into full feature phase. */
export async function chapLogin(ini: TestInitiator, o: ChapLoginOptions): Promise<ChapLoginResult> {
  const isid = o.isid ?? Buffer.from([0x80, 0x00, 0x00, 0x00, 0x00, 0x02]);
  const type = o.sessionType ?? 'Normal';
  const first: Array<[string, string]> = [
    ['InitiatorName', o.initiatorName ?? 'iqn.2007-10.com.example:test-initiator'],
    ['SessionType', type],
  ];
  if (type === 'Normal') first.push(['TargetName', o.targetName ?? 'iqn.2016-06.org.gluster:test']);
  first.push(['AuthMethod', o.authMethod ?? 'CHAP,None']);
  let r = await ini.loginStep(isid, 0, 0, 1, true, first);
  const res: ChapLoginResult = { status: r.status, step: 'authmethod', tsih: 0 };
  const am = r.keys.get('AuthMethod');
  if (am !== undefined) res.authMethod = am;
  if (r.status !== 0 || am !== 'CHAP') return res;

  r = await ini.loginStep(isid, 0, 0, 1, false, [['CHAP_A', o.algorithms ?? '5']]);
  res.status = r.status;
  res.step = 'challenge';
  if (r.status !== 0) return res;
  const alg = r.keys.get('CHAP_A')!;
  const id = Number(r.keys.get('CHAP_I'));
  const challenge = parseBinary(r.keys.get('CHAP_C')!);
  res.algorithm = alg;
  res.identifier = id;
  res.challenge = challenge;

  const response = chapDigest(alg, id, o.secret ?? '', challenge);
  const pairs: Array<[string, string]> = [['CHAP_N', o.username ?? ''], ['CHAP_R', encode(response, o.encoding)]];
  let mutualChallenge: Buffer | undefined;
  let mutualId = 0;
  if (o.mutual !== undefined) {
    mutualId = o.mutual.id ?? 77;
    mutualChallenge = o.mutual.challenge === 'reflect' ? challenge : (o.mutual.challenge ?? randomBytes(16));
    pairs.push(['CHAP_I', String(mutualId)], ['CHAP_C', encode(mutualChallenge, o.encoding)]);
  }
  pairs.push(...(o.responseExtra ?? []));
  const sentAt = Date.now();
  r = await ini.loginStep(isid, 0, 0, 1, true, pairs);
  res.status = r.status;
  res.step = 'response';
  res.responseKeys = r.keys;
  if (r.status !== 0) {
    res.refusedAfterMs = Date.now() - sentAt;
    return res;
  }
  if (o.mutual !== undefined) {
    const n = r.keys.get('CHAP_N');
    const rr = r.keys.get('CHAP_R');
    res.targetAuthenticated =
      n === o.mutual.username && rr !== undefined && parseBinary(rr).equals(chapDigest(alg, mutualId, o.mutual.secret, mutualChallenge!));
  }
  if (o.securityOnly) return res;

  const keys: Record<string, string> = {
    HeaderDigest: 'None', DataDigest: 'None', MaxRecvDataSegmentLength: '262144',
    ...(type === 'Normal'
      ? { InitialR2T: 'No', ImmediateData: 'Yes', MaxBurstLength: '262144', FirstBurstLength: '65536', MaxOutstandingR2T: '1', ErrorRecoveryLevel: '0', MaxConnections: '1' }
      : {}),
    ...o.keys,
  };
  r = await ini.loginStep(isid, 0, 1, 3, true, Object.entries(keys));
  res.status = r.status;
  res.step = 'operational';
  res.tsih = r.tsih;
  ini.negotiated = new Map(r.keys);
  return res;
}
