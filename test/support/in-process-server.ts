import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { IscsiServer } from '../../src/iscsi/server.js';
import type { EffectiveConfig, IscsiSettings, LunDefinition, TargetDefinition } from '../../src/config/types.js';

export const TEST_TARGET = 'iqn.2016-06.org.gluster:test';

export interface RunningServer {
  server: IscsiServer;
  port: number;
  dir: string;
  lunPath: string;
  stop(): Promise<void>;
}

export function lunDefinition(p: string, overrides: Partial<LunDefinition> = {}): LunDefinition {
  return {
    lun: 0, path: p, sizeBytes: 64 * 1024 * 1024, create: true, readOnly: false, blockSize: 512, writeCache: true,
    serial: 'TESTSERIAL0001', naa: '6001405abcdef0123456789abcdef012', vendor: 'GLFS', product: 'glfs-target', revision: '0001',
    ...overrides,
  };
}

/** A real server on a real TCP port over real files, in this process (for protocol tests). */
export async function startInProcessServer(opts: {
  iscsi?: Partial<IscsiSettings>;
  targets?: (dir: string) => TargetDefinition[];
  portals?: EffectiveConfig['portals'];
  /** Discovery CHAP (EffectiveConfig.discovery). */
  discovery?: EffectiveConfig['discovery'];
} = {}): Promise<RunningServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'glfs-target-test-'));
  const lunPath = path.join(dir, 'lun0.img');
  const config: EffectiveConfig = {
    portals: opts.portals ?? [{ host: '127.0.0.1', port: 0, tpgt: 1 }],
    targets: opts.targets?.(dir) ?? [{ iqn: TEST_TARGET, luns: [lunDefinition(lunPath)], acl: [{ initiator: '*', readOnly: false }] }],
    iscsi: {
      cmdWindow: 128, maxRecvDataSegmentLength: 262144, maxBurstLength: 1048576, firstBurstLength: 262144,
      maxOutstandingR2T: 8, immediateData: true, initialR2T: false, headerDigest: ['None', 'CRC32C'], dataDigest: ['None', 'CRC32C'],
      loginTimeout: 15, nopInInterval: 0, nopInTimeout: 10, maxPendingLogins: 64, defaultTime2Wait: 2, defaultTime2Retain: 0,
      ...opts.iscsi,
    },
    dataDir: dir,
    logLevel: 'warn',
    controlSocket: path.join(dir, 'control.sock'),
    ...(opts.discovery !== undefined ? { discovery: opts.discovery } : {}),
  };
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const server = new IscsiServer(config, logger);
  await server.start();
  const port = server.addresses()[0]!.port;
  return {
    server, port, dir, lunPath,
    async stop() {
      await server.stop(2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
