/**
 * Rules between fields, which the schema (config/schema.ts) cannot check one field at a time:
 * unique portals, target names, LUN numbers, files, serials, NAAs and ACL entries; LUN size a
 * multiple of its block size; firstBurstLength ≤ maxBurstLength; one secret source per CHAP
 * credential set and different secrets in the two directions.
 *
 * They run on the file as read, even when fields are wrong, so that every problem is reported
 * at once — using only the fields the schema found no problem with (`issues`).
 */
import path from 'node:path';
import { deriveLunIdentity, lunSizeBytes } from './derive.js';
import { describe, formatPath, quote, type Issue } from './messages.js';
import { canonicalHost, formatHostPort, hostFamily, isWildcardHost, parseHostPort, type HostPort } from './portal.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_ISCSI_SETTINGS } from './schema.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Which fields of the file passed the schema: those with no issue at or below them. */
class ValidFields {
  private readonly failed = new Set<string>();

  constructor(issues: readonly Issue[]) {
    for (const { path: p } of issues) {
      for (let n = 0; n <= p.length; n++) this.failed.add(JSON.stringify(p.slice(0, n)));
    }
  }

  ok(at: PropertyKey[]): boolean {
    return !this.failed.has(JSON.stringify(at));
  }

  /** `obj[key]` (of the object at `here`) if it is given and valid, else undefined. */
  get<T>(obj: Obj, key: string, here: PropertyKey[]): T | undefined {
    return obj[key] !== undefined && this.ok([...here, key]) ? (obj[key] as T) : undefined;
  }

  /** `obj[key]`, or `fallback` when it is not given; undefined when it is given but invalid. */
  getOr<T>(obj: Obj, key: string, here: PropertyKey[], fallback: T): T | undefined {
    return obj[key] === undefined ? fallback : this.get<T>(obj, key, here);
  }
}

/** Problems between fields of `raw` (the parsed JSON), given the schema's `issues`. Paths are resolved against `baseDir`. */
export function crossCheck(raw: Obj, issues: readonly Issue[], baseDir: string): Issue[] {
  const valid = new ValidFields(issues);
  const found: Issue[] = [];
  checkPortals(raw, valid, found);
  const iscsi = isObj(raw.iscsi) ? raw.iscsi : undefined;
  if (iscsi) checkBurstLengths(iscsi, valid, found);
  checkTargets(raw, valid, baseDir, found);
  if (isObj(raw.discovery) && isObj(raw.discovery.chap)) checkChap(raw.discovery.chap, ['discovery', 'chap'], found);
  if (iscsi) checkAuthBackoff(iscsi, valid, found);
  return found;
}

/** Duplicate listen addresses, and specific addresses shadowed by a wildcard on the same port. */
function checkPortals(raw: Obj, valid: ValidFields, found: Issue[]): void {
  const portals: Array<{ hp: HostPort; path: PropertyKey[] }> = [];
  list(raw.portals).forEach((p, i) => {
    const at: PropertyKey[] = isObj(p) ? ['portals', i, 'address'] : ['portals', i];
    const address = isObj(p) ? p.address : p;
    if (typeof address === 'string' && valid.ok(at)) portals.push({ hp: parseHostPort(address)!, path: at });
  });
  portals.forEach((cur, j) => {
    for (const prev of portals.slice(0, j)) {
      if (prev.hp.port !== cur.hp.port) continue;
      const a = canonicalHost(prev.hp.host);
      const b = canonicalHost(cur.hp.host);
      if (a === b) {
        found.push({ path: cur.path, message: `${quote(formatHostPort(cur.hp))} is listed twice (also ${formatPath(prev.path)}); remove one` });
        return;
      }
      const family = hostFamily(a);
      if (family !== 0 && family === hostFamily(b) && (isWildcardHost(a) || isWildcardHost(b))) {
        found.push({
          path: cur.path,
          message: `${quote(formatHostPort(cur.hp))} overlaps ${formatPath(prev.path)} ${quote(formatHostPort(prev.hp))}: a wildcard address already listens on every IPv${family} address on port ${cur.hp.port}; remove one`,
        });
        return;
      }
    }
  });
}

/** RFC 7143 §13.14: FirstBurstLength must not exceed MaxBurstLength. */
function checkBurstLengths(iscsi: Obj, valid: ValidFields, found: Issue[]): void {
  const here = ['iscsi'];
  const first = valid.getOr<number>(iscsi, 'firstBurstLength', here, DEFAULT_ISCSI_SETTINGS.firstBurstLength);
  const max = valid.getOr<number>(iscsi, 'maxBurstLength', here, DEFAULT_ISCSI_SETTINGS.maxBurstLength);
  if (first === undefined || max === undefined || first <= max) return;
  if (iscsi.firstBurstLength === undefined) {
    found.push({
      path: ['iscsi', 'maxBurstLength'],
      message: `${max} is smaller than iscsi.firstBurstLength (${first}, the default); use at least ${first} or lower firstBurstLength`,
    });
  } else {
    found.push({ path: ['iscsi', 'firstBurstLength'], message: `${first} is larger than iscsi.maxBurstLength (${max}); use at most ${max}` });
  }
}

function checkAuthBackoff(iscsi: Obj, valid: ValidFields, found: Issue[]): void {
  const here = ['iscsi'];
  const initial = valid.getOr<number>(iscsi, 'authBackoffInitial', here, DEFAULT_ISCSI_SETTINGS.authBackoffInitial!);
  const max = valid.getOr<number>(iscsi, 'authBackoffMax', here, DEFAULT_ISCSI_SETTINGS.authBackoffMax!);
  if (initial === undefined || max === undefined || initial <= max) return;
  found.push({
    path: iscsi.authBackoffMax === undefined ? ['iscsi', 'authBackoffInitial'] : ['iscsi', 'authBackoffMax'],
    message: `iscsi.authBackoffInitial (${initial}) is larger than iscsi.authBackoffMax (${max}); the back-off starts at the first and doubles up to the second`,
  });
}

/** Where a value was first seen, for "already used by" messages. */
class FirstUse<K> {
  private readonly seen = new Map<K, { path: PropertyKey[]; explicit: boolean }>();

  /** The earlier use of `key` that `here` clashes with, if any (two derived values never clash: their sources would). */
  clash(key: K, here: PropertyKey[], explicit = true): PropertyKey[] | undefined {
    const prev = this.seen.get(key);
    if (!prev) {
      this.seen.set(key, { path: here, explicit });
      return undefined;
    }
    return prev.explicit || explicit ? prev.path : undefined;
  }
}

/** Report `value` (at `here`.`field`) when `seen` already had it; `message` gets where. */
function unique<T>(seen: FirstUse<T>, value: T | undefined, here: PropertyKey[], field: string, found: Issue[], message: (other: string) => string, explicit = true): void {
  if (value === undefined) return;
  const clash = seen.clash(value, here, explicit);
  if (clash) found.push({ path: [...here, field], message: message(formatPath(clash)) });
}

function checkTargets(raw: Obj, valid: ValidFields, baseDir: string, found: Issue[]): void {
  const iqns = new FirstUse<string>();
  const files = new FirstUse<string>();
  const serials = new FirstUse<string>();
  const naas = new FirstUse<string>();
  list(raw.targets).forEach((t, ti) => {
    if (!isObj(t)) return;
    const target: PropertyKey[] = ['targets', ti];
    const iqn = valid.get<string>(t, 'iqn', target);
    unique(iqns, iqn, target, 'iqn', found, (other) => `${quote(iqn!)} is already used by ${other}; target names must be unique`);

    const lunNumbers = new FirstUse<number>();
    list(t.luns).forEach((l, li) => {
      if (!isObj(l)) return;
      const here: PropertyKey[] = [...target, 'luns', li];
      const lun = valid.get<number>(l, 'lun', here);
      unique(lunNumbers, lun, here, 'lun', found, (other) => `LUN ${lun} is defined twice (also ${other}); LUN numbers must be unique per target`);

      const size = valid.get<string | number>(l, 'size', here);
      const blockSize = valid.getOr<number>(l, 'blockSize', here, DEFAULT_BLOCK_SIZE);
      if (size !== undefined && blockSize !== undefined && lunSizeBytes(size) % blockSize !== 0) {
        const bytes = lunSizeBytes(size);
        found.push({
          path: [...here, 'size'],
          message: `${describe(size)} (${bytes} bytes) is not a multiple of the block size ${blockSize}; use e.g. ${Math.ceil(bytes / blockSize) * blockSize}`,
        });
      }

      const file = valid.get<string>(l, 'path', here);
      const abs = file !== undefined ? path.resolve(baseDir, file) : undefined;
      unique(files, abs, here, 'path', found, (other) => `${quote(abs!)} is already used by ${other}; each LUN needs its own file`);

      // A missing serial/NAA is derived (when iqn and lun are valid); an invalid one is not compared.
      const derived = iqn !== undefined && lun !== undefined ? deriveLunIdentity(iqn, lun) : undefined;
      const serial = l.serial === undefined ? derived?.serial : valid.get<string>(l, 'serial', here);
      unique(serials, serial, here, 'serial', found, (other) => `${quote(serial!)} is already used by ${other}; serial numbers must be unique`, l.serial !== undefined);
      // NAA designators are hex digits: compared regardless of case.
      const naa = l.naa === undefined ? derived?.naa : valid.get<string>(l, 'naa', here)?.toLowerCase();
      unique(naas, naa, here, 'naa', found, (other) => `${quote(naa!)} is already used by ${other}; NAA identifiers must be unique`, l.naa !== undefined);
    });

    const initiators = new FirstUse<string>();
    list(t.acl).forEach((a, ai) => {
      if (!isObj(a)) return;
      const here: PropertyKey[] = [...target, 'acl', ai];
      const name = valid.get<string>(a, 'initiator', here);
      unique(initiators, name, here, 'initiator', found, (other) => `${quote(name!)} is listed twice (also ${other}); merge the entries`);
      if (isObj(a.chap)) checkChap(a.chap, [...here, 'chap'], found);
    });
  });
}

/** One secret source per direction; RFC 7143 §12.1.3: mutual CHAP must not reuse the initiator's secret. */
function checkChap(chap: Obj, here: PropertyKey[], found: Issue[]): void {
  checkSecretSource(chap, here, found);
  if (isObj(chap.mutual)) {
    checkSecretSource(chap.mutual, [...here, 'mutual'], found);
    if (typeof chap.secret === 'string' && chap.secret !== '' && chap.mutual.secret === chap.secret) {
      found.push({
        path: [...here, 'mutual', 'secret'],
        message: 'must differ from chap.secret: the iSCSI RFCs forbid using one CHAP secret in both directions',
      });
    }
  }
}

function checkSecretSource(cred: Obj, here: PropertyKey[], found: Issue[]): void {
  const given = (['secret', 'secretFile', 'secretEnv'] as const).filter((k) => cred[k] !== undefined);
  if (given.length === 0) found.push({ path: here, message: 'one of secret, secretFile or secretEnv is required' });
  else if (given.length > 1) found.push({ path: here, message: `give only one of secret, secretFile or secretEnv (found ${given.join(', ')})` });
}
