/**
 * EffectiveConfig → the config file that says exactly it: what `glfs-target check` prints. Every
 * field is written out (defaults included, paths absolute), in the file format `serve --config`
 * reads: sizes as `size`, portals as "host:port" (an object where a TPGT or advertised address
 * differs from what the position implies), the metrics listener as its `address`. Reading the
 * output again gives the same EffectiveConfig.
 */
import type { ChapConfig, ChapCredentials } from './chap.js';
import { formatHostPort } from './portal.js';
import type { ConfigFile } from './schema.js';
import type { EffectiveConfig, LunDefinition } from './types.js';

type PortalInFile = ConfigFile['portals'][number];
type LunInFile = ConfigFile['targets'][number]['luns'][number];
type ChapInFile = NonNullable<ConfigFile['targets'][number]['acl'][number]['chap']>;

export function configFileOf(config: EffectiveConfig): ConfigFile {
  return {
    portals: config.portals.map((p, i): PortalInFile => {
      const address = formatHostPort(p);
      if (p.advertise === undefined && p.tpgt === i + 1) return address;
      return { address, ...(p.advertise !== undefined ? { advertise: p.advertise } : {}), tpgt: p.tpgt };
    }),
    targets: config.targets.map((t) => ({
      iqn: t.iqn,
      ...(t.alias !== undefined ? { alias: t.alias } : {}),
      luns: t.luns.map(lunInFile),
      acl: t.acl.map((a) => ({ initiator: a.initiator, readOnly: a.readOnly, ...(a.chap !== undefined ? { chap: chapInFile(a.chap) } : {}) })),
    })),
    iscsi: { ...config.iscsi } as ConfigFile['iscsi'],
    ...(config.discovery !== undefined ? { discovery: config.discovery.chap !== undefined ? { chap: chapInFile(config.discovery.chap) } : {} } : {}),
    controlSocket: config.controlSocket,
    ...(config.metrics !== undefined ? { metrics: { address: formatHostPort(config.metrics) } } : {}),
    dataDir: config.dataDir,
    logLevel: config.logLevel,
  };
}

function lunInFile(l: LunDefinition): LunInFile {
  return {
    lun: l.lun,
    path: l.path,
    ...(l.sizeBytes !== undefined ? { size: l.sizeBytes } : {}),
    create: l.create,
    ...(l.volume !== undefined ? { volume: l.volume } : {}),
    readOnly: l.readOnly,
    blockSize: l.blockSize as LunInFile['blockSize'],
    writeCache: l.writeCache,
    vendor: l.vendor,
    product: l.product,
    revision: l.revision,
    serial: l.serial,
    naa: l.naa,
  };
}

function credentialsInFile(c: ChapCredentials): ChapCredentials {
  return {
    username: c.username,
    ...(c.secret !== undefined ? { secret: c.secret } : {}),
    ...(c.secretFile !== undefined ? { secretFile: c.secretFile } : {}),
    ...(c.secretEnv !== undefined ? { secretEnv: c.secretEnv } : {}),
  };
}

function chapInFile(c: ChapConfig): ChapInFile {
  return { ...credentialsInFile(c), ...(c.mutual !== undefined ? { mutual: credentialsInFile(c.mutual) } : {}) };
}

/** Whether a CHAP secret is written in the file itself (`check` prints it masked, so its output needs it back). */
export function hasInlineSecrets(config: EffectiveConfig): boolean {
  const chaps = [...config.targets.flatMap((t) => t.acl.map((a) => a.chap)), config.discovery?.chap];
  return chaps.some((c) => c?.secret !== undefined || c?.mutual?.secret !== undefined);
}
