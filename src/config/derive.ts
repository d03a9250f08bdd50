/**
 * A validated config file → EffectiveConfig: what the schema's defaults cannot say because it
 * depends on something else — derived LUN identifiers, portal group tags by position, paths
 * resolved against the config file's directory, dataDir from the environment.
 *
 * LUN serial (VPD 0x80) and NAA (VPD 0x83) default to values derived from
 * sha256(target iqn + ":" + lun), so they survive restarts and moves of the file. Two servers
 * exporting the same IQN and LUN therefore present the same identity (which is what multipath
 * wants when they serve the same file); set serial/naa explicitly otherwise.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { ChapConfig, ChapCredentials } from './chap.js';
import { formatHostPort, parseHostPort } from './portal.js';
import { DEFAULT_CONTROL_SOCKET, DEFAULT_ISCSI_SETTINGS, DEFAULT_METRICS_PORT, NAA_COMPANY_ID, type ConfigFile } from './schema.js';
import { parseSize } from './size.js';
import type { AclEntry, EffectiveConfig, IscsiSettings, LunDefinition, PortalConfig, TargetDefinition } from './types.js';

export interface ParseOptions {
  /** Environment for defaults (GLFS_TARGET_DATA_DIR). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Directory the default dataDir ("./data") is relative to. Default process.cwd(). */
  cwd?: string;
}

/**
 * Stable identity of a LUN, from sha256(iqn + ":" + lun):
 *   serial = first 24 hex digits (VPD 0x80)
 *   naa    = "6" + NAA_COMPANY_ID + next 25 hex digits (VPD 0x83, NAA IEEE Registered Extended)
 */
export function deriveLunIdentity(iqn: string, lun: number): { serial: string; naa: string } {
  const h = createHash('sha256').update(`${iqn}:${lun}`).digest('hex');
  return { serial: h.slice(0, 24), naa: `6${NAA_COMPANY_ID}${h.slice(24, 49)}` };
}

/** LUN size in bytes of a valid `size` field. */
export const lunSizeBytes = (size: string | number): number => parseSize(size)!;

export function deriveEffectiveConfig(file: ConfigFile, baseDir: string, opts: ParseOptions): EffectiveConfig {
  const portals: PortalConfig[] = file.portals.map((p, i) => {
    const { address, advertise, tpgt } = typeof p === 'string' ? { address: p, advertise: undefined, tpgt: undefined } : p;
    const hp = parseHostPort(address)!;
    return {
      host: hp.host,
      port: hp.port,
      tpgt: tpgt ?? i + 1,
      ...(advertise !== undefined ? { advertise: formatHostPort(parseHostPort(advertise, hp.port)!) } : {}),
    };
  });

  const targets: TargetDefinition[] = file.targets.map((t) => {
    const luns: LunDefinition[] = t.luns.map((l) => {
      const derived = deriveLunIdentity(t.iqn, l.lun);
      return {
        lun: l.lun,
        path: path.resolve(baseDir, l.path),
        ...(l.size !== undefined ? { sizeBytes: lunSizeBytes(l.size) } : {}),
        create: l.create,
        ...(l.volume !== undefined ? { volume: l.volume } : {}),
        readOnly: l.readOnly,
        blockSize: l.blockSize,
        writeCache: l.writeCache,
        serial: l.serial ?? derived.serial,
        naa: l.naa?.toLowerCase() ?? derived.naa,
        vendor: l.vendor,
        product: l.product,
        revision: l.revision,
      };
    });
    const acl: AclEntry[] = t.acl.map((a) => ({
      initiator: a.initiator,
      readOnly: a.readOnly,
      ...(a.chap !== undefined ? { chap: resolveChap(a.chap, baseDir) } : {}),
    }));
    return { iqn: t.iqn, ...(t.alias !== undefined ? { alias: t.alias } : {}), luns, acl };
  });

  // The defaults' key order is the order `check` prints.
  const iscsi: IscsiSettings = { ...DEFAULT_ISCSI_SETTINGS, ...file.iscsi } as IscsiSettings;

  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const dataDir =
    file.dataDir !== undefined
      ? path.resolve(baseDir, file.dataDir)
      : env.GLFS_TARGET_DATA_DIR
        ? path.resolve(cwd, env.GLFS_TARGET_DATA_DIR)
        : path.resolve(cwd, 'data');

  return {
    portals,
    targets,
    iscsi,
    dataDir,
    logLevel: file.logLevel,
    controlSocket: path.resolve(baseDir, file.controlSocket ?? DEFAULT_CONTROL_SOCKET),
    ...(file.metrics !== undefined ? { metrics: parseHostPort(file.metrics.address, DEFAULT_METRICS_PORT)! } : {}),
    ...(file.discovery?.chap !== undefined ? { discovery: { chap: resolveChap(file.discovery.chap, baseDir) } } : {}),
  };
}

type ChapInFile = NonNullable<ConfigFile['targets'][number]['acl'][number]['chap']>;

/** CHAP settings with secretFile resolved against the config file's directory. */
function resolveChap(c: ChapInFile, baseDir: string): ChapConfig {
  const cred = (x: ChapInFile | NonNullable<ChapInFile['mutual']>): ChapCredentials => ({
    username: x.username,
    ...(x.secret !== undefined ? { secret: x.secret } : {}),
    ...(x.secretFile !== undefined ? { secretFile: path.resolve(baseDir, x.secretFile) } : {}),
    ...(x.secretEnv !== undefined ? { secretEnv: x.secretEnv } : {}),
  });
  return { ...cred(c), ...(c.mutual !== undefined ? { mutual: cred(c.mutual) } : {}) };
}
