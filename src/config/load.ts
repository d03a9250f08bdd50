/**
 * Config file (JSON) → EffectiveConfig: validation, defaults, derived identifiers.
 *
 * Every problem is collected (not just the first) and reported as one line naming the field
 * in bracket/dot notation plus the fix, e.g.
 *   targets[0].luns[0].size: "8X" is not a size; use e.g. "8G"
 * Unknown fields are errors, to catch typos.
 *
 * Choices (see also docs of each constant below):
 * - Sizes: a number of bytes, or a string with K/M/G/T/P, optionally followed by "i" and/or
 *   "B"; ALWAYS binary (1024-based), like targetcli and qemu-img. Must be a positive multiple
 *   of the LUN's block size. Omitted = use the existing file's size.
 * - Relative paths (luns[].path, dataDir, chap.secretFile) are resolved against the config
 *   file's directory.
 * - LUN serial (VPD 0x80) and NAA (VPD 0x83) default to values derived from
 *   sha256(target iqn + ":" + lun), so they survive restarts and moves of the file. Two
 *   servers exporting the same IQN and LUN therefore present the same identity (which is what
 *   multipath wants when they serve the same file); set serial/naa explicitly otherwise.
 * - acl omitted = any initiator (configWarnings() reports it); acl [] = nobody.
 * - CHAP: acl[].chap and discovery.chap take { username, secret | secretFile | secretEnv,
 *   mutual?: { username, secret | secretFile | secretEnv } }. loadConfigFile() reads every
 *   secret and refuses ones shorter than 12 bytes and a mutual secret equal to the initiator's
 *   (config/chap.ts); parseConfig() checks only the shape. Secret values never appear in messages.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod';
import type { AclEntry, EffectiveConfig, IscsiSettings, LunDefinition, PortalConfig, TargetDefinition } from './types.js';
import { resolveChapSecrets, type ChapConfig, type ChapCredentials } from './chap.js';
import { iscsiNameProblem } from './iscsi-name.js';
import { formatPath, parseJsonText } from './json.js';
import {
  canonicalHost,
  DEFAULT_ISCSI_PORT,
  formatHostPort,
  hostFamily,
  isLoopbackHost,
  isWildcardHost,
  parseHostPort,
  type HostPort,
} from './portal.js';
import { parseSize } from './size.js';

// ---------------------------------------------------------------------------------------------
// Public constants

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** IQN of the embedded default target (no config file). */
export const DEFAULT_TARGET_IQN = 'iqn.2016-06.org.gluster:glfs-target';
/** Size of the embedded default LUN file (sparse). */
export const DEFAULT_LUN_SIZE = 2 ** 30;
export const DEFAULT_PORTALS = ['0.0.0.0:3260'];

export const DEFAULT_VENDOR = 'GLFS';
export const DEFAULT_PRODUCT = 'glfs-target';
export const DEFAULT_REVISION = '0001';

/**
 * IEEE company ID used in derived NAA designators: 02-6C-66. First octet 0x02 has the U/L
 * bit set, i.e. it lies in the IEEE "AAI" (administratively assigned) quadrant, which no
 * vendor is registered for, so derived identifiers cannot collide with real hardware IDs.
 * 6C 66 is ASCII "lf".
 */
export const NAA_COMPANY_ID = '026c66';

export const DEFAULT_ISCSI_SETTINGS: Readonly<IscsiSettings> = Object.freeze({
  cmdWindow: 128,
  maxRecvDataSegmentLength: 262144,
  maxBurstLength: 1048576,
  firstBurstLength: 262144,
  maxOutstandingR2T: 1,
  immediateData: true,
  initialR2T: false,
  headerDigest: ['None', 'CRC32C'],
  dataDigest: ['None', 'CRC32C'],
  loginTimeout: 15,
  nopInInterval: 10,
  nopInTimeout: 10,
  maxPendingLogins: 64,
  defaultTime2Wait: 2,
  defaultTime2Retain: 0,
  maxPendingLoginsPerAddress: 16,
  authBackoffAfter: 5,
  authBackoffInitial: 1,
  authBackoffMax: 60,
  maxDataInFlight: 64 * 1024 * 1024,
}) as Readonly<IscsiSettings>;

const ISCSI_RANGES: Record<Exclude<keyof IscsiSettings, 'immediateData' | 'initialR2T' | 'headerDigest' | 'dataDigest'>, [number, number]> = {
  cmdWindow: [1, 65535],
  maxRecvDataSegmentLength: [512, 16777215],
  maxBurstLength: [512, 16777215],
  firstBurstLength: [512, 16777215],
  maxOutstandingR2T: [1, 65535],
  loginTimeout: [1, 3600],
  nopInInterval: [0, 3600],
  nopInTimeout: [1, 3600],
  maxPendingLogins: [1, 65535],
  defaultTime2Wait: [0, 3600],
  defaultTime2Retain: [0, 3600],
  maxPendingLoginsPerAddress: [1, 65535],
  authBackoffAfter: [0, 1000],
  authBackoffInitial: [1, 3600],
  authBackoffMax: [1, 86400],
  maxDataInFlight: [1024 * 1024, 2 ** 40],
};

// ---------------------------------------------------------------------------------------------
// Errors

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly issues: string[],
    message?: string,
  ) {
    super(message ?? `invalid configuration:\n  ${issues.join('\n  ')}`);
  }
}

export interface ParseOptions {
  /** Environment for defaults (GLFS_TARGET_DATA_DIR). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Directory the default dataDir ("./data") is relative to. Default process.cwd(). */
  cwd?: string;
}

// ---------------------------------------------------------------------------------------------
// Field checks: each returns the value (possibly normalized) or an Invalid with the message.

class Invalid {
  constructor(readonly message: string) {}
}
type Check<T> = (v: unknown) => T | Invalid;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return quote(v);
  return String(v);
}

function quote(s: string): string {
  const q = JSON.stringify(s);
  return q.length > 70 ? `${q.slice(0, 66)}…"` : q;
}

const intIn =
  (min: number, max: number): Check<number> =>
  (v) => {
    if (typeof v === 'number' && Number.isInteger(v)) {
      return v >= min && v <= max ? v : new Invalid(`${v} is out of range; use an integer from ${min} to ${max}`);
    }
    return new Invalid(`expected an integer from ${min} to ${max}, got ${describe(v)}`);
  };

const bool: Check<boolean> = (v) => (typeof v === 'boolean' ? v : new Invalid(`expected true or false, got ${describe(v)}`));

const nonEmptyString: Check<string> = (v) => {
  if (typeof v !== 'string') return new Invalid(`expected a string, got ${describe(v)}`);
  return v === '' ? new Invalid('must not be empty') : v;
};

const oneOf =
  <T extends string | number>(values: readonly T[]): Check<T> =>
  (v) =>
    (values as readonly unknown[]).includes(v)
      ? (v as T)
      : new Invalid(`expected ${values.map((x) => JSON.stringify(x)).join(' or ')}, got ${describe(v)}`);

const printableAscii =
  (max: number, example: string): Check<string> =>
  (v) => {
    if (typeof v !== 'string') return new Invalid(`expected a string such as ${quote(example)}, got ${describe(v)}`);
    if (v === '' || v.length > max || !/^[\x20-\x7e]*$/.test(v)) {
      return new Invalid(`${quote(v)} must be 1 to ${max} printable ASCII characters, e.g. ${quote(example)}`);
    }
    return v;
  };

function nameCheck(allowStar: boolean, example: string): Check<string> {
  const use = allowStar ? `use e.g. ${quote(example)} or "*"` : `use e.g. ${quote(example)}`;
  return (v) => {
    if (typeof v !== 'string') return new Invalid(`expected an iSCSI name, got ${describe(v)}; ${use}`);
    if (allowStar && v === '*') return v;
    const problem = iscsiNameProblem(v);
    if (problem === undefined) return v;
    if (problem === 'upper-case') return new Invalid(`${quote(v)} is not an iSCSI name: iSCSI names are lower-case; use ${quote(v.toLowerCase())}`);
    if (problem !== '') return new Invalid(`${quote(v)} is not an iSCSI name: it is ${problem}`);
    return new Invalid(`${quote(v)} is not an iSCSI name; ${use}`);
  };
}

const targetName = nameCheck(false, 'iqn.2016-06.org.gluster:node1');
const initiatorName = nameCheck(true, 'iqn.1994-05.com.redhat:8277148d16b2');

const size: Check<number> = (v) => {
  const bytes = parseSize(v);
  if (bytes !== undefined) return bytes;
  if (typeof v === 'number') return new Invalid(`${v} is not a size; use a positive whole number of bytes or a string such as "8G"`);
  if (typeof v === 'string') return new Invalid(`${quote(v)} is not a size; use e.g. "8G"`);
  return new Invalid(`expected a size such as "8G" or a number of bytes, got ${describe(v)}`);
};

const naa: Check<string> = (v) => {
  if (typeof v === 'string' && /^6[0-9a-fA-F]{31}$/.test(v)) return v.toLowerCase();
  return new Invalid(`${describe(v)} is not an NAA IEEE Registered Extended identifier; use 32 hex digits starting with 6, e.g. "6${NAA_COMPANY_ID}0123456789abcdef012345678"`);
};

const envName: Check<string> = (v) =>
  typeof v === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(v)
    ? v
    : new Invalid(`${describe(v)} is not an environment variable name; use e.g. "GLFS_CHAP_SECRET"`);

const portalAddress: Check<HostPort> = (v) => {
  if (typeof v === 'string') {
    const hp = parseHostPort(v);
    if (hp) return hp;
    return new Invalid(`${quote(v)} is not host:port; use e.g. "0.0.0.0:3260" or "[::]:3260"`);
  }
  return new Invalid(`expected "host:port" such as "0.0.0.0:3260", got ${describe(v)}`);
};

// ---------------------------------------------------------------------------------------------
// Schema

function optional<T>(check: Check<T>) {
  return z
    .unknown()
    .transform((v, ctx): T | undefined => {
      if (v === undefined) return undefined;
      const r = check(v);
      if (r instanceof Invalid) {
        ctx.addIssue({ code: 'custom', message: r.message, input: v });
        return z.NEVER;
      }
      return r;
    })
    .optional();
}

function required<T>(check: Check<T>) {
  return z.unknown().transform((v, ctx): T => {
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: 'required' });
      return z.NEVER;
    }
    const r = check(v);
    if (r instanceof Invalid) {
      ctx.addIssue({ code: 'custom', message: r.message, input: v });
      return z.NEVER;
    }
    return r;
  });
}

/** A secret value: never echoed in a message, whatever it is. */
const secretValue: Check<string> = (v) => {
  if (typeof v !== 'string') return new Invalid('expected a string (the value is not shown)');
  return v === '' ? new Invalid('must not be empty') : v;
};

const credentialsShape = {
  username: required(nonEmptyString),
  secret: optional(secretValue),
  secretFile: optional(nonEmptyString),
  secretEnv: optional(envName),
};
const CredentialsSchema = z.strictObject(credentialsShape);
const ChapSchema = z.strictObject({ ...credentialsShape, mutual: CredentialsSchema.optional() });

const AclSchema = z.strictObject({
  initiator: required(initiatorName),
  readOnly: optional(bool),
  chap: ChapSchema.optional(),
});

const LunSchema = z.strictObject({
  lun: required(intIn(0, 16383)),
  path: required(nonEmptyString),
  size: optional(size),
  readOnly: optional(bool),
  blockSize: optional(oneOf([512, 4096] as const)),
  writeCache: optional(bool),
  vendor: optional(printableAscii(8, DEFAULT_VENDOR)),
  product: optional(printableAscii(16, DEFAULT_PRODUCT)),
  revision: optional(printableAscii(4, DEFAULT_REVISION)),
  serial: optional(printableAscii(40, '0123456789abcdef01234567')),
  naa: optional(naa),
});

const TargetSchema = z.strictObject({
  iqn: required(targetName),
  alias: optional(printableUtf8(255)),
  luns: z.array(LunSchema).min(1, { error: 'at least one LUN is required, e.g. [{ "lun": 0, "path": "/mnt/gluster/disk.img" }]' }),
  acl: z.array(AclSchema).optional(),
});

function printableUtf8(maxBytes: number): Check<string> {
  return (v) => {
    if (typeof v !== 'string') return new Invalid(`expected a string, got ${describe(v)}`);
    if (v === '' || Buffer.byteLength(v) > maxBytes || /[\x00-\x1f\x7f]/.test(v)) {
      return new Invalid(`${quote(v)} must be 1 to ${maxBytes} bytes of text without control characters`);
    }
    return v;
  };
}

const digestList: Check<Array<'CRC32C' | 'None'>> = (v) => {
  const fix = 'use a list of "CRC32C" and/or "None" in order of preference, e.g. ["None", "CRC32C"]';
  if (!Array.isArray(v) || v.length === 0) return new Invalid(`expected a non-empty list; ${fix}`);
  for (const x of v) {
    if (x !== 'CRC32C' && x !== 'None') return new Invalid(`${describe(x)} is not a digest; ${fix}`);
  }
  if (new Set(v).size !== v.length) return new Invalid(`lists a digest twice; ${fix}`);
  return v as Array<'CRC32C' | 'None'>;
};

const IscsiSchema = z.strictObject({
  ...(Object.fromEntries(Object.entries(ISCSI_RANGES).map(([k, [min, max]]) => [k, optional(intIn(min, max))])) as {
    [K in keyof typeof ISCSI_RANGES]: ReturnType<typeof optional<number>>;
  }),
  immediateData: optional(bool),
  initialR2T: optional(bool),
  headerDigest: optional(digestList),
  dataDigest: optional(digestList),
});

const PortalObjectSchema = z.strictObject({
  address: required(portalAddress),
  advertise: optional(nonEmptyString),
  tpgt: optional(intIn(1, 65535)),
});

interface ParsedPortal {
  address: HostPort;
  advertise?: string;
  tpgt?: number;
}

const PortalSchema = z.unknown().transform((v, ctx): ParsedPortal => {
  if (typeof v === 'string') {
    const r = portalAddress(v);
    if (r instanceof Invalid) {
      ctx.addIssue({ code: 'custom', message: r.message, input: v });
      return z.NEVER;
    }
    return { address: r };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected "host:port" or { "address": "host:port", "advertise": "host:port", "tpgt": 1 }, got ${describe(v)}`,
      input: v,
    });
    return z.NEVER;
  }
  const r = PortalObjectSchema.safeParse(v, { reportInput: true });
  if (!r.success) {
    for (const issue of r.error.issues) ctx.addIssue({ ...(issue as z.core.$ZodRawIssue) });
    return z.NEVER;
  }
  let advertise: string | undefined;
  if (r.data.advertise !== undefined) {
    const hp = parseHostPort(r.data.advertise, r.data.address.port);
    if (!hp) {
      ctx.addIssue({ code: 'custom', path: ['advertise'], message: `${quote(r.data.advertise)} is not host:port; use e.g. "10.0.2.100:3260"` });
      return z.NEVER;
    }
    if (isWildcardHost(hp.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['advertise'],
        message: `${quote(r.data.advertise)} cannot be advertised; use an address initiators can reach, e.g. "10.0.2.100:3260"`,
      });
      return z.NEVER;
    }
    advertise = formatHostPort(hp);
  }
  return { address: r.data.address, ...(advertise !== undefined ? { advertise } : {}), ...(r.data.tpgt !== undefined ? { tpgt: r.data.tpgt } : {}) };
});

const DiscoverySchema = z.strictObject({
  chap: ChapSchema.optional(),
});

const ConfigSchema = z.strictObject({
  discovery: DiscoverySchema.optional(),
  portals: z.array(PortalSchema).min(1, { error: 'at least one portal is required; use e.g. ["0.0.0.0:3260"] (or leave portals out)' }).optional(),
  targets: z
    .array(TargetSchema)
    .min(1, { error: 'at least one target is required, e.g. [{ "iqn": "iqn.2016-06.org.gluster:node1", "luns": [...] }]' }),
  iscsi: IscsiSchema.optional(),
  dataDir: optional(nonEmptyString),
  logLevel: optional(oneOf(LOG_LEVELS)),
});

type ParsedConfig = z.output<typeof ConfigSchema>;

/** Field names per object kind, keyed by the last name in the path, for "did you mean" hints. */
const FIELDS: Record<string, string[]> = {
  '': Object.keys(ConfigSchema.shape),
  iscsi: Object.keys(IscsiSchema.shape),
  portals: Object.keys(PortalObjectSchema.shape),
  targets: Object.keys(TargetSchema.shape),
  luns: Object.keys(LunSchema.shape),
  acl: Object.keys(AclSchema.shape),
  chap: Object.keys(ChapSchema.shape),
  discovery: Object.keys(DiscoverySchema.shape),
  mutual: Object.keys(CredentialsSchema.shape),
};

// ---------------------------------------------------------------------------------------------
// Issue formatting

interface Issue {
  path: PropertyKey[];
  message: string;
}

function formatIssue(issue: Issue): string {
  const p = formatPath(issue.path);
  return p === '' ? issue.message : `${p}: ${issue.message}`;
}

function zodIssues(issues: readonly z.core.$ZodIssue[]): Issue[] {
  const out: Issue[] = [];
  for (const issue of issues) {
    const p = issue.path as PropertyKey[];
    switch (issue.code) {
      case 'invalid_type': {
        if (issue.input === undefined) out.push({ path: p, message: 'required' });
        else if (p.length === 0) out.push({ path: p, message: `the configuration must be a JSON object, got ${describe(issue.input)}` });
        else {
          const expected = issue.expected === 'array' ? 'a list' : issue.expected === 'object' ? 'an object' : issue.expected;
          out.push({ path: p, message: `expected ${expected}, got ${describe(issue.input)}` });
        }
        break;
      }
      case 'unrecognized_keys': {
        const lastName = [...p].reverse().find((s) => typeof s === 'string') as string | undefined;
        const known = FIELDS[lastName ?? ''] ?? [];
        for (const key of issue.keys) {
          const hint = closest(key, known);
          out.push({
            path: [...p, key],
            message: hint ? `unknown field; did you mean ${quote(hint)}?` : `unknown field; known fields here: ${known.join(', ')}`,
          });
        }
        break;
      }
      default:
        out.push({ path: p, message: issue.message });
    }
  }
  return out;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best !== undefined && bestDist <= Math.max(1, Math.min(3, Math.floor(best.length / 3))) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

// ---------------------------------------------------------------------------------------------
// Cross-field checks. They run on the raw JSON even when field checks failed (so that every
// problem is reported at once), looking only at values that are individually valid.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const valid = <T>(check: Check<T>, v: unknown): T | undefined => {
  if (v === undefined) return undefined;
  const r = check(v);
  return r instanceof Invalid ? undefined : r;
};

function crossCheck(raw: Obj, baseDir: string): Issue[] {
  const issues: Issue[] = [];
  const where = (p: PropertyKey[]) => formatPath(p);

  // Portals: duplicate listen addresses, and specific addresses shadowed by a wildcard on the same port.
  const portals: Array<{ hp: HostPort; path: PropertyKey[] }> = [];
  const rawPortals = raw.portals === undefined ? DEFAULT_PORTALS : list(raw.portals);
  rawPortals.forEach((p, i) => {
    const addrPath: PropertyKey[] = isObj(p) ? ['portals', i, 'address'] : ['portals', i];
    const hp = valid(portalAddress, isObj(p) ? p.address : p);
    if (hp) portals.push({ hp, path: addrPath });
  });
  portals.forEach((cur, j) => {
    for (const prev of portals.slice(0, j)) {
      if (prev.hp.port !== cur.hp.port) continue;
      const a = canonicalHost(prev.hp.host);
      const b = canonicalHost(cur.hp.host);
      if (a === b) {
        issues.push({ path: cur.path, message: `${quote(formatHostPort(cur.hp))} is listed twice (also ${where(prev.path)}); remove one` });
        return;
      }
      const fa = hostFamily(a);
      if (fa !== 0 && fa === hostFamily(b) && (isWildcardHost(a) || isWildcardHost(b))) {
        issues.push({
          path: cur.path,
          message: `${quote(formatHostPort(cur.hp))} overlaps ${where(prev.path)} ${quote(formatHostPort(prev.hp))}: a wildcard address already listens on every IPv${fa} address on port ${cur.hp.port}; remove one`,
        });
        return;
      }
    }
  });

  // iSCSI settings.
  if (isObj(raw.iscsi)) {
    const [fmin, fmax] = ISCSI_RANGES.firstBurstLength;
    const [bmin, bmax] = ISCSI_RANGES.maxBurstLength;
    const fb = raw.iscsi.firstBurstLength === undefined ? DEFAULT_ISCSI_SETTINGS.firstBurstLength : valid(intIn(fmin, fmax), raw.iscsi.firstBurstLength);
    const mb = raw.iscsi.maxBurstLength === undefined ? DEFAULT_ISCSI_SETTINGS.maxBurstLength : valid(intIn(bmin, bmax), raw.iscsi.maxBurstLength);
    if (fb !== undefined && mb !== undefined && fb > mb) {
      const which = raw.iscsi.firstBurstLength === undefined ? 'iscsi.maxBurstLength' : 'iscsi.firstBurstLength';
      issues.push({
        path: which === 'iscsi.maxBurstLength' ? ['iscsi', 'maxBurstLength'] : ['iscsi', 'firstBurstLength'],
        message:
          which === 'iscsi.maxBurstLength'
            ? `${mb} is smaller than iscsi.firstBurstLength (${fb}, the default); use at least ${fb} or lower firstBurstLength`
            : `${fb} is larger than iscsi.maxBurstLength (${mb}); use at most ${mb}`,
      });
    }
  }

  // Targets, LUNs, ACLs.
  const iqns = new Map<string, number>();
  const paths = new Map<string, PropertyKey[]>();
  const serials = new Map<string, { path: PropertyKey[]; explicit: boolean }>();
  const naas = new Map<string, { path: PropertyKey[]; explicit: boolean }>();
  list(raw.targets).forEach((t, ti) => {
    if (!isObj(t)) return;
    const iqn = valid(targetName, t.iqn);
    if (iqn !== undefined) {
      const prev = iqns.get(iqn);
      if (prev !== undefined) issues.push({ path: ['targets', ti, 'iqn'], message: `${quote(iqn)} is already used by targets[${prev}]; target names must be unique` });
      else iqns.set(iqn, ti);
    }

    const luns = new Map<number, PropertyKey[]>();
    list(t.luns).forEach((l, li) => {
      if (!isObj(l)) return;
      const here: PropertyKey[] = ['targets', ti, 'luns', li];
      const lun = valid(intIn(0, 16383), l.lun);
      if (lun !== undefined) {
        const prev = luns.get(lun);
        if (prev) issues.push({ path: [...here, 'lun'], message: `LUN ${lun} is defined twice (also ${where(prev)}); LUN numbers must be unique per target` });
        else luns.set(lun, here);
      }
      const bytes = valid(size, l.size);
      const bs = l.blockSize === undefined ? 512 : valid(oneOf([512, 4096] as const), l.blockSize);
      if (bytes !== undefined && bs !== undefined && bytes % bs !== 0) {
        const up = Math.ceil(bytes / bs) * bs;
        issues.push({
          path: [...here, 'size'],
          message: `${describe(l.size)} (${bytes} bytes) is not a multiple of the block size ${bs}; use e.g. ${up}`,
        });
      }
      const file = valid(nonEmptyString, l.path);
      if (file !== undefined) {
        const abs = path.resolve(baseDir, file);
        const prev = paths.get(abs);
        if (prev) issues.push({ path: [...here, 'path'], message: `${quote(abs)} is already used by ${where(prev)}; each LUN needs its own file` });
        else paths.set(abs, here);
      }
      const ids = iqn !== undefined && lun !== undefined ? deriveLunIdentity(iqn, lun) : undefined;
      // Two derived values only collide when iqn and lun do, which is reported above.
      const serial = l.serial === undefined ? ids?.serial : valid(printableAscii(40, ''), l.serial);
      if (serial !== undefined) {
        const prev = serials.get(serial);
        if (!prev) serials.set(serial, { path: here, explicit: l.serial !== undefined });
        else if (prev.explicit || l.serial !== undefined) {
          issues.push({ path: [...here, 'serial'], message: `${quote(serial)} is already used by ${where(prev.path)}; serial numbers must be unique` });
        }
      }
      const id = l.naa === undefined ? ids?.naa : valid(naa, l.naa);
      if (id !== undefined) {
        const prev = naas.get(id);
        if (!prev) naas.set(id, { path: here, explicit: l.naa !== undefined });
        else if (prev.explicit || l.naa !== undefined) {
          issues.push({ path: [...here, 'naa'], message: `${quote(id)} is already used by ${where(prev.path)}; NAA identifiers must be unique` });
        }
      }
    });

    const initiators = new Map<string, PropertyKey[]>();
    list(t.acl).forEach((a, ai) => {
      if (!isObj(a)) return;
      const here: PropertyKey[] = ['targets', ti, 'acl', ai];
      const name = valid(initiatorName, a.initiator);
      if (name !== undefined) {
        const prev = initiators.get(name);
        if (prev) issues.push({ path: [...here, 'initiator'], message: `${quote(name)} is listed twice (also ${where(prev)}); merge the entries` });
        else initiators.set(name, here);
      }
      if (isObj(a.chap)) checkChap(a.chap, [...here, 'chap'], issues);
    });
  });

  if (isObj(raw.discovery) && isObj(raw.discovery.chap)) checkChap(raw.discovery.chap, ['discovery', 'chap'], issues);

  if (isObj(raw.iscsi)) {
    const [imin, imax] = ISCSI_RANGES.authBackoffInitial;
    const [mmin, mmax] = ISCSI_RANGES.authBackoffMax;
    const initial = raw.iscsi.authBackoffInitial === undefined ? DEFAULT_ISCSI_SETTINGS.authBackoffInitial : valid(intIn(imin, imax), raw.iscsi.authBackoffInitial);
    const max = raw.iscsi.authBackoffMax === undefined ? DEFAULT_ISCSI_SETTINGS.authBackoffMax : valid(intIn(mmin, mmax), raw.iscsi.authBackoffMax);
    if (initial !== undefined && max !== undefined && initial > max) {
      issues.push({
        path: raw.iscsi.authBackoffMax === undefined ? ['iscsi', 'authBackoffInitial'] : ['iscsi', 'authBackoffMax'],
        message: `iscsi.authBackoffInitial (${initial}) is larger than iscsi.authBackoffMax (${max}); the back-off starts at the first and doubles up to the second`,
      });
    }
  }
  return issues;
}

/** Secret sources of a CHAP block (ACL entry or discovery) and the one-secret-per-direction rule for inline secrets. */
function checkChap(chap: Obj, here: PropertyKey[], issues: Issue[]): void {
  checkSecretSource(chap, here, issues);
  if (isObj(chap.mutual)) {
    checkSecretSource(chap.mutual, [...here, 'mutual'], issues);
    if (typeof chap.secret === 'string' && chap.secret !== '' && chap.mutual.secret === chap.secret) {
      issues.push({
        path: [...here, 'mutual', 'secret'],
        message: 'must differ from chap.secret: the iSCSI RFCs forbid using one CHAP secret in both directions',
      });
    }
  }
}

function checkSecretSource(cred: Obj, where: PropertyKey[], issues: Issue[]): void {
  const given = (['secret', 'secretFile', 'secretEnv'] as const).filter((k) => cred[k] !== undefined);
  if (given.length === 0) issues.push({ path: where, message: 'one of secret, secretFile or secretEnv is required' });
  else if (given.length > 1) issues.push({ path: where, message: `give only one of secret, secretFile or secretEnv (found ${given.join(', ')})` });
}

// ---------------------------------------------------------------------------------------------
// Derived identifiers

/**
 * Stable identity of a LUN, from sha256(iqn + ":" + lun):
 *   serial = first 24 hex digits (VPD 0x80)
 *   naa    = "6" + NAA_COMPANY_ID + next 25 hex digits (VPD 0x83, NAA IEEE Registered Extended)
 */
export function deriveLunIdentity(iqn: string, lun: number): { serial: string; naa: string } {
  const h = createHash('sha256').update(`${iqn}:${lun}`).digest('hex');
  return { serial: h.slice(0, 24), naa: `6${NAA_COMPANY_ID}${h.slice(24, 49)}` };
}

// ---------------------------------------------------------------------------------------------
// Assembly

function build(parsed: ParsedConfig, baseDir: string, opts: ParseOptions): EffectiveConfig {
  const parsedPortals: ParsedPortal[] = parsed.portals ?? DEFAULT_PORTALS.map((a) => ({ address: parseHostPort(a)! }));
  const portals: PortalConfig[] = parsedPortals.map((p, i) => ({
    host: p.address.host,
    port: p.address.port,
    tpgt: p.tpgt ?? i + 1,
    ...(p.advertise !== undefined ? { advertise: p.advertise } : {}),
  }));

  const targets: TargetDefinition[] = parsed.targets.map((t) => {
    const luns: LunDefinition[] = t.luns.map((l) => {
      const ids = deriveLunIdentity(t.iqn, l.lun);
      return {
        lun: l.lun,
        path: path.resolve(baseDir, l.path),
        ...(l.size !== undefined ? { sizeBytes: l.size } : {}),
        readOnly: l.readOnly ?? false,
        blockSize: l.blockSize ?? 512,
        writeCache: l.writeCache ?? true,
        serial: l.serial ?? ids.serial,
        naa: l.naa ?? ids.naa,
        vendor: l.vendor ?? DEFAULT_VENDOR,
        product: l.product ?? DEFAULT_PRODUCT,
        revision: l.revision ?? DEFAULT_REVISION,
      };
    });
    type ParsedAcl = NonNullable<typeof t.acl>[number];
    const acl: AclEntry[] = (t.acl ?? [{ initiator: '*' } as ParsedAcl]).map((a) => ({
      initiator: a.initiator,
      readOnly: a.readOnly ?? false,
      ...(a.chap !== undefined ? { chap: buildChap(a.chap, baseDir) } : {}),
    }));
    return { iqn: t.iqn, ...(t.alias !== undefined ? { alias: t.alias } : {}), luns, acl };
  });

  const iscsi: IscsiSettings = { ...DEFAULT_ISCSI_SETTINGS, headerDigest: [...DEFAULT_ISCSI_SETTINGS.headerDigest], dataDigest: [...DEFAULT_ISCSI_SETTINGS.dataDigest] };
  for (const [k, v] of Object.entries(parsed.iscsi ?? {})) {
    if (v !== undefined) (iscsi as unknown as Obj)[k] = v;
  }

  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const dataDir =
    parsed.dataDir !== undefined
      ? path.resolve(baseDir, parsed.dataDir)
      : env.GLFS_TARGET_DATA_DIR
        ? path.resolve(cwd, env.GLFS_TARGET_DATA_DIR)
        : path.resolve(cwd, 'data');

  return {
    portals, targets, iscsi, dataDir, logLevel: parsed.logLevel ?? 'info',
    ...(parsed.discovery?.chap !== undefined ? { discovery: { chap: buildChap(parsed.discovery.chap, baseDir) } } : {}),
  };
}

function buildChap(c: NonNullable<NonNullable<ParsedConfig['targets'][number]['acl']>[number]['chap']>, baseDir: string): ChapConfig {
  const cred = (x: typeof c | NonNullable<typeof c.mutual>): ChapCredentials => ({
    username: x.username,
    ...(x.secret !== undefined ? { secret: x.secret } : {}),
    ...(x.secretFile !== undefined ? { secretFile: path.resolve(baseDir, x.secretFile) } : {}),
    ...(x.secretEnv !== undefined ? { secretEnv: x.secretEnv } : {}),
  });
  return { ...cred(c), ...(c.mutual !== undefined ? { mutual: cred(c.mutual) } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Entry points

/**
 * Validate a parsed JSON document and apply defaults. Relative paths are resolved against
 * `baseDir` (the config file's directory). Throws ConfigError listing every problem.
 */
export function parseConfig(json: unknown, baseDir: string, opts: ParseOptions = {}): EffectiveConfig {
  return parseWithExtraIssues(json, baseDir, opts, []);
}

function parseWithExtraIssues(json: unknown, baseDir: string, opts: ParseOptions, extra: string[]): EffectiveConfig {
  baseDir = path.resolve(opts.cwd ?? process.cwd(), baseDir);
  const result = ConfigSchema.safeParse(json, { reportInput: true });
  const issues = [...extra];
  if (!result.success) issues.push(...zodIssues(result.error.issues).map(formatIssue));
  if (isObj(json)) issues.push(...crossCheck(json, baseDir).map(formatIssue));
  const unique = [...new Set(issues)];
  if (unique.length > 0 || !result.success) throw new ConfigError(unique);
  return build(result.data, baseDir, opts);
}

/** Read, parse and validate a config file. Throws ConfigError (also for unreadable files and JSON syntax errors). */
export async function loadConfigFile(file: string, opts: ParseOptions = {}): Promise<EffectiveConfig> {
  const abs = path.resolve(opts.cwd ?? process.cwd(), file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EACCES'
          ? 'permission denied'
          : err.code === 'EISDIR'
            ? 'is a directory, not a file'
            : err.message;
    throw new ConfigError([`${file}: cannot read the config file: ${why}`]);
  }
  const parsed = parseJsonText(text);
  if (parsed.syntaxError) {
    const { line, column, message } = parsed.syntaxError;
    throw new ConfigError([`${file}:${line}:${column}: invalid JSON: ${message}`]);
  }
  const dupIssues = parsed.duplicateKeys.map(
    (d) => `${formatPath(d.path)}: defined twice (second time at ${file}:${d.line}:${d.column}); JSON keeps only the last one, remove one`,
  );
  const config = parseWithExtraIssues(parsed.value, path.dirname(abs), opts, dupIssues);
  // CHAP secrets (inline, files, variables) are read and checked here, so that `check`, start-up
  // and SIGHUP reload refuse a file whose secrets are missing or too short.
  const { issues } = await resolveChapSecrets(config, opts.env ?? process.env);
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/**
 * The configuration used when no file is given: one target DEFAULT_TARGET_IQN with LUN 0 a
 * sparse 1 GiB file <dataDir>/lun0.img, any initiator, listening on 127.0.0.1 only.
 * dataDir defaults to $GLFS_TARGET_DATA_DIR or ./data (relative to the working directory).
 */
export function embeddedDefaultConfig(opts: { dataDir?: string; port?: number } & ParseOptions = {}): EffectiveConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const dataDir = path.resolve(cwd, opts.dataDir ?? env.GLFS_TARGET_DATA_DIR ?? 'data');
  return parseConfig(
    {
      portals: [`127.0.0.1:${opts.port ?? DEFAULT_ISCSI_PORT}`],
      targets: [{ iqn: DEFAULT_TARGET_IQN, luns: [{ lun: 0, path: 'lun0.img', size: DEFAULT_LUN_SIZE }], acl: [{ initiator: '*' }] }],
      dataDir,
    },
    dataDir,
    opts,
  );
}

/**
 * Things worth a warning in a valid configuration (the server/CLI logs them): targets open to
 * any initiator without CHAP on a non-loopback portal, and targets nobody may log in to.
 */
export function configWarnings(config: EffectiveConfig): string[] {
  const warnings: string[] = [];
  const exposed = config.portals.some((p) => !isLoopbackHost(p.host));
  config.targets.forEach((t, i) => {
    if (t.acl.length === 0) {
      warnings.push(`targets[${i}] ${t.iqn}: acl is empty, so no initiator can log in`);
    } else if (exposed && t.acl.some((a) => a.initiator === '*' && a.chap === undefined)) {
      warnings.push(
        `targets[${i}] ${t.iqn}: any initiator may log in without authentication (acl allows "*"); list initiator names in targets[${i}].acl or add CHAP`,
      );
    }
  });
  return warnings;
}

/** Deep copy with every secret value replaced by "***" (for printing or logging a config). */
export function maskSecrets<T>(value: T): T {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (isObj(v)) {
      const out: Obj = {};
      for (const [k, x] of Object.entries(v)) {
        out[k] = x !== undefined && /^(secret|password|CHAP_[RC])$/i.test(k) ? '***' : walk(x);
      }
      return out;
    }
    return v;
  };
  return walk(value) as T;
}
