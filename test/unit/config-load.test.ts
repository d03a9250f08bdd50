import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  configWarnings,
  DEFAULT_ISCSI_SETTINGS,
  DEFAULT_TARGET_IQN,
  deriveLunIdentity,
  embeddedDefaultConfig,
  loadConfigFile,
  maskSecrets,
  parseConfig,
} from '../../src/config/load.js';
import { parseSize } from '../../src/config/size.js';
import { isValidIscsiName } from '../../src/config/iscsi-name.js';
import { parseHostPort } from '../../src/config/portal.js';

const BASE = '/etc/glfs';
const OPTS = { env: {}, cwd: '/srv/work' };

function minimal(extra: Record<string, unknown> = {}, lun: Record<string, unknown> = {}, target: Record<string, unknown> = {}) {
  return {
    targets: [{ iqn: 'iqn.2016-06.org.gluster:node1', luns: [{ lun: 0, path: '/mnt/a.img', ...lun }], ...target }],
    ...extra,
  };
}

/** The issues of the ConfigError parseConfig throws for `json`. */
function issuesOf(json: unknown): string[] {
  try {
    parseConfig(json, BASE, OPTS);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig: the documented example', () => {
  it('parses the contract example', () => {
    const cfg = parseConfig(
      {
        portals: ['0.0.0.0:3260'],
        targets: [
          {
            iqn: 'iqn.2016-06.org.gluster:node1',
            luns: [{ lun: 0, path: '/mnt/gluster-store/app-store.img', size: '8G', readOnly: false }],
            acl: [{ initiator: 'iqn.1994-05.com.redhat:8277148d16b2' }, { initiator: '*' }],
          },
        ],
      },
      BASE,
      OPTS,
    );
    expect(cfg.portals).toEqual([{ host: '0.0.0.0', port: 3260, tpgt: 1 }]);
    expect(cfg.targets[0]!.luns[0]).toMatchObject({ lun: 0, path: '/mnt/gluster-store/app-store.img', sizeBytes: 8 * 2 ** 30, readOnly: false });
    expect(cfg.targets[0]!.acl).toEqual([
      { initiator: 'iqn.1994-05.com.redhat:8277148d16b2', readOnly: false },
      { initiator: '*', readOnly: false },
    ]);
  });
});

describe('parseConfig: defaults', () => {
  it('fills every default', () => {
    const cfg = parseConfig(minimal(), BASE, OPTS);
    expect(cfg.portals).toEqual([{ host: '0.0.0.0', port: 3260, tpgt: 1 }]);
    expect(cfg.iscsi).toEqual(DEFAULT_ISCSI_SETTINGS);
    expect(cfg.logLevel).toBe('info');
    expect(cfg.dataDir).toBe('/srv/work/data');
    const t = cfg.targets[0]!;
    expect(t.acl).toEqual([{ initiator: '*', readOnly: false }]);
    expect(t.alias).toBeUndefined();
    const l = t.luns[0]!;
    expect(l).toMatchObject({ readOnly: false, blockSize: 512, writeCache: true, vendor: 'GLFS', product: 'glfs-target', revision: '0001' });
    expect(l.sizeBytes).toBeUndefined();
    expect('sizeBytes' in l).toBe(false);
  });

  it('documented iSCSI defaults', () => {
    expect(DEFAULT_ISCSI_SETTINGS).toEqual({
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
      backendTimeout: 43,
      backendCallsPerLun: 32,
      busyPollMicroseconds: 100,
    });
  });

  it('does not share default arrays between configs', () => {
    const a = parseConfig(minimal(), BASE, OPTS);
    a.iscsi.headerDigest.push('CRC32C');
    expect(parseConfig(minimal(), BASE, OPTS).iscsi.headerDigest).toEqual(['None', 'CRC32C']);
  });

  it('dataDir: config value relative to the file, else $GLFS_TARGET_DATA_DIR, else ./data', () => {
    expect(parseConfig(minimal({ dataDir: 'state' }), BASE, OPTS).dataDir).toBe('/etc/glfs/state');
    expect(parseConfig(minimal(), BASE, { env: { GLFS_TARGET_DATA_DIR: '/var/lib/x' }, cwd: '/srv' }).dataDir).toBe('/var/lib/x');
    expect(parseConfig(minimal(), BASE, { env: { GLFS_TARGET_DATA_DIR: 'rel' }, cwd: '/srv' }).dataDir).toBe('/srv/rel');
  });

  it('takes explicit values', () => {
    const cfg = parseConfig(
      minimal(
        { logLevel: 'debug', iscsi: { cmdWindow: 32, headerDigest: ['CRC32C'], immediateData: false, nopInInterval: 0 } },
        { readOnly: true, blockSize: 4096, writeCache: false, vendor: 'ACME', product: 'Disk', revision: '2', serial: 'SN 1', naa: '6001405ABCDEF0123456789ABCDEF012' },
        { alias: 'node one' },
      ),
      BASE,
      OPTS,
    );
    expect(cfg.logLevel).toBe('debug');
    expect(cfg.iscsi).toMatchObject({ cmdWindow: 32, headerDigest: ['CRC32C'], immediateData: false, nopInInterval: 0, dataDigest: ['None', 'CRC32C'] });
    expect(cfg.targets[0]!.alias).toBe('node one');
    expect(cfg.targets[0]!.luns[0]).toMatchObject({
      readOnly: true,
      blockSize: 4096,
      writeCache: false,
      vendor: 'ACME',
      product: 'Disk',
      revision: '2',
      serial: 'SN 1',
      naa: '6001405abcdef0123456789abcdef012',
    });
  });
});

describe('derived serial and NAA', () => {
  it('are stable and well-formed', () => {
    const a = parseConfig(minimal(), BASE, OPTS).targets[0]!.luns[0]!;
    const b = parseConfig(minimal({}, { path: '/elsewhere.img', size: '1G' }), '/other', OPTS).targets[0]!.luns[0]!;
    expect(a.serial).toBe(b.serial);
    expect(a.naa).toBe(b.naa);
    expect(a.serial).toMatch(/^[0-9a-f]{24}$/);
    expect(a.naa).toMatch(/^6026c66[0-9a-f]{25}$/);
    expect(deriveLunIdentity('iqn.2016-06.org.gluster:node1', 0)).toEqual({ serial: a.serial, naa: a.naa });
    // Pinned: changing the derivation would change the identity of every existing LUN.
    expect(a.serial).toBe('c9ca71add88d8ad2810d37ed');
    expect(a.naa).toBe('6026c66f39e818b73e34ab952441c045');
  });

  it('differ between LUNs and targets', () => {
    const ids = new Set([
      deriveLunIdentity('iqn.2016-06.org.gluster:node1', 0).naa,
      deriveLunIdentity('iqn.2016-06.org.gluster:node1', 1).naa,
      deriveLunIdentity('iqn.2016-06.org.gluster:node2', 0).naa,
    ]);
    expect(ids.size).toBe(3);
  });

  it('known value', async () => {
    const { createHash } = await import('node:crypto');
    const h = createHash('sha256').update('iqn.2016-06.org.gluster:node1:7').digest('hex');
    expect(deriveLunIdentity('iqn.2016-06.org.gluster:node1', 7)).toEqual({ serial: h.slice(0, 24), naa: '6026c66' + h.slice(24, 49) });
  });
});

describe('sizes', () => {
  it.each([
    ['512M', 512 * 2 ** 20],
    ['8G', 8 * 2 ** 30],
    ['8g', 8 * 2 ** 30],
    ['1T', 2 ** 40],
    ['1GiB', 2 ** 30],
    ['1GB', 2 ** 30],
    ['2Gi', 2 * 2 ** 30],
    ['100MB', 100 * 2 ** 20],
    ['1P', 2 ** 50],
    ['1.5G', 1.5 * 2 ** 30],
    ['4K', 4096],
    ['4096', 4096],
    ['4096B', 4096],
    ['16 M', 16 * 2 ** 20],
    [1048576, 1048576],
  ])('%s = %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
    expect(parseConfig(minimal({}, { size: input }), BASE, OPTS).targets[0]!.luns[0]!.sizeBytes).toBe(bytes);
  });

  it.each(['8X', '', 'G', '-1G', '1.1K', '0', '8 GB extra', '99999P'])('%j is refused', (input) => {
    expect(parseSize(input)).toBeUndefined();
  });

  it.each([0, -512, 1.5, Number.MAX_SAFE_INTEGER + 1])('%d is refused', (input) => {
    expect(parseSize(input)).toBeUndefined();
    expect(issuesOf(minimal({}, { size: input }))).toEqual([
      `targets[0].luns[0].size: ${input} is not a size; use a positive whole number of bytes or a string such as "8G"`,
    ]);
  });

  it('must be a multiple of the block size', () => {
    expect(issuesOf(minimal({}, { size: 1000 }))).toEqual([
      'targets[0].luns[0].size: 1000 (1000 bytes) is not a multiple of the block size 512; use e.g. 1024',
    ]);
    expect(issuesOf(minimal({}, { size: '6K', blockSize: 4096 }))).toEqual([
      'targets[0].luns[0].size: "6K" (6144 bytes) is not a multiple of the block size 4096; use e.g. 8192',
    ]);
    expect(parseConfig(minimal({}, { size: '8K', blockSize: 4096 }), BASE, OPTS).targets[0]!.luns[0]!.sizeBytes).toBe(8192);
  });
});

describe('error messages', () => {
  it('size', () => {
    expect(issuesOf(minimal({}, { size: '8X' }))).toEqual(['targets[0].luns[0].size: "8X" is not a size; use e.g. "8G"']);
  });

  it('iSCSI name', () => {
    expect(issuesOf(minimal({}, {}, { iqn: 'foo' }))).toEqual([
      'targets[0].iqn: "foo" is not an iSCSI name; use e.g. "iqn.2016-06.org.gluster:node1"',
    ]);
    expect(issuesOf(minimal({}, {}, { iqn: 'iqn.2016-06.org.Gluster:Node1' }))).toEqual([
      'targets[0].iqn: "iqn.2016-06.org.Gluster:Node1" is not an iSCSI name: iSCSI names are lower-case; use "iqn.2016-06.org.gluster:node1"',
    ]);
    const long = `iqn.2016-06.org.gluster:${'x'.repeat(200)}`;
    expect(issuesOf(minimal({}, {}, { iqn: long }))[0]).toMatch(/is not an iSCSI name: it is longer than 223 bytes$/);
    expect(issuesOf(minimal({}, {}, { iqn: 42 }))).toEqual([
      'targets[0].iqn: expected an iSCSI name, got 42; use e.g. "iqn.2016-06.org.gluster:node1"',
    ]);
  });

  it('portal', () => {
    expect(issuesOf(minimal({ portals: ['0.0.0.0:3260', '1.2.3.4:99999'] }))).toEqual([
      'portals[1]: "1.2.3.4:99999" is not host:port; use e.g. "0.0.0.0:3260" or "[::]:3260"',
    ]);
  });

  it('duplicate LUN numbers', () => {
    const json = minimal();
    json.targets[0]!.luns.push({ lun: 0, path: '/mnt/b.img' });
    expect(issuesOf(json)).toEqual([
      'targets[0].luns[1].lun: LUN 0 is defined twice (also targets[0].luns[0]); LUN numbers must be unique per target',
    ]);
  });

  it('missing required fields', () => {
    expect(issuesOf({ targets: [{ iqn: 'iqn.2016-06.org.gluster:node1', luns: [{ lun: 0 }] }] })).toEqual(['targets[0].luns[0].path: required']);
    expect(issuesOf({})).toEqual(['targets: required']);
    expect(issuesOf({ targets: [{ luns: [{ path: '/x' }] }] })).toEqual(['targets[0].iqn: required', 'targets[0].luns[0].lun: required']);
  });

  it('unknown fields, with a suggestion', () => {
    expect(issuesOf(minimal({ portal: ['0.0.0.0:3260'] }, { sise: '8G', readonly: true }))).toEqual([
      'targets[0].luns[0].sise: unknown field; did you mean "size"?',
      'targets[0].luns[0].readonly: unknown field; did you mean "readOnly"?',
      'portal: unknown field; did you mean "portals"?',
    ]);
    expect(issuesOf(minimal({ iscsi: { zzzzzzzz: 1 } }))[0]).toMatch(/^iscsi\.zzzzzzzz: unknown field; known fields here: cmdWindow, /);
  });

  it('wrong types', () => {
    expect(issuesOf(minimal({ portals: 'x', iscsi: [] }, { readOnly: 'yes', blockSize: 1024 }, { acl: {} }))).toEqual([
      'portals: expected a list, got "x"',
      'targets[0].luns[0].readOnly: expected true or false, got "yes"',
      'targets[0].luns[0].blockSize: expected 512 or 4096, got 1024',
      'targets[0].acl: expected a list, got an object',
      'iscsi: expected an object, got a list',
    ]);
    expect(issuesOf(null)).toEqual(['the configuration must be a JSON object, got null']);
    expect(issuesOf({ targets: [] })[0]).toMatch(/^targets: at least one target is required/);
    expect(issuesOf(minimal({}, {}, { luns: [] }))[0]).toMatch(/^targets\[0\]\.luns: at least one LUN is required/);
  });

  it('collects all errors at once', () => {
    const issues = issuesOf({
      portals: ['0.0.0.0:3260', 'nope:x', '0.0.0.0:3260'],
      targets: [
        {
          iqn: 'foo',
          luns: [
            { lun: 0, path: '/a', size: '8X' },
            { lun: 0, size: '1G' },
            { lun: 99999, path: '/a' },
          ],
          acl: [{ initiator: 'bad name' }],
        },
        { iqn: 'iqn.2016-06.org.gluster:x', luns: [{ lun: 0, path: 'b', colour: 'red' }] },
      ],
      iscsi: { cmdWindow: 0 },
      logLevel: 'verbose',
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        'portals[1]: "nope:x" is not host:port; use e.g. "0.0.0.0:3260" or "[::]:3260"',
        'portals[2]: "0.0.0.0:3260" is listed twice (also portals[0]); remove one',
        'targets[0].iqn: "foo" is not an iSCSI name; use e.g. "iqn.2016-06.org.gluster:node1"',
        'targets[0].luns[0].size: "8X" is not a size; use e.g. "8G"',
        'targets[0].luns[1].path: required',
        'targets[0].luns[1].lun: LUN 0 is defined twice (also targets[0].luns[0]); LUN numbers must be unique per target',
        'targets[0].luns[2].lun: 99999 is out of range; use an integer from 0 to 16383',
        'targets[0].luns[2].path: "/a" is already used by targets[0].luns[0]; each LUN needs its own file',
        'targets[0].acl[0].initiator: "bad name" is not an iSCSI name; use e.g. "iqn.1994-05.com.redhat:8277148d16b2" or "*"',
        'targets[1].luns[0].colour: unknown field; known fields here: lun, path, create, volume, size, readOnly, blockSize, writeCache, vendor, product, revision, serial, naa',
        'iscsi.cmdWindow: 0 is out of range; use an integer from 1 to 65535',
        'logLevel: expected "trace" or "debug" or "info" or "warn" or "error" or "fatal", got "verbose"',
      ]),
    );
    expect(issues).toHaveLength(12);
  });

  it('ConfigError message lists the issues', () => {
    try {
      parseConfig({}, BASE, OPTS);
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toBe('invalid configuration:\n  targets: required');
      expect((e as Error).name).toBe('ConfigError');
    }
  });
});

describe('portals', () => {
  it('forms of host:port', () => {
    const cfg = parseConfig(
      minimal({
        portals: [
          '[::1]:3261',
          '[::]',
          'storage.example.com',
          '10.0.0.1:3262',
          { address: '0.0.0.0:3263', advertise: '10.0.2.100:3260', tpgt: 7 },
          { address: '[::]:3264', advertise: 'fd00::5' },
        ],
      }),
      BASE,
      OPTS,
    );
    expect(cfg.portals).toEqual([
      { host: '::1', port: 3261, tpgt: 1 },
      { host: '::', port: 3260, tpgt: 2 },
      { host: 'storage.example.com', port: 3260, tpgt: 3 },
      { host: '10.0.0.1', port: 3262, tpgt: 4 },
      { host: '0.0.0.0', port: 3263, tpgt: 7, advertise: '10.0.2.100:3260' },
      { host: '::', port: 3264, tpgt: 6, advertise: '[fd00::5]:3264' },
    ]);
  });

  it('parseHostPort', () => {
    expect(parseHostPort('[fe80::1%eth0]:3260')).toEqual({ host: 'fe80::1%eth0', port: 3260 });
    for (const bad of ['', ':3260', '1.2.3.400:3260', 'a:b:c', '[1.2.3.4]:3260', 'host:0', 'host:', '[::1]x', 'under_score:1']) {
      expect(parseHostPort(bad), bad).toBeUndefined();
    }
  });

  it('refuses duplicates and wildcard overlaps', () => {
    expect(issuesOf(minimal({ portals: ['[::1]:3260', '[0:0::1]:3260'] }))).toEqual([
      'portals[1]: "[0:0::1]:3260" is listed twice (also portals[0]); remove one',
    ]);
    expect(issuesOf(minimal({ portals: ['0.0.0.0:3260', { address: '127.0.0.1:3260' }] }))).toEqual([
      'portals[1].address: "127.0.0.1:3260" overlaps portals[0] "0.0.0.0:3260": a wildcard address already listens on every IPv4 address on port 3260; remove one',
    ]);
    // Different ports and different families are fine.
    expect(parseConfig(minimal({ portals: ['0.0.0.0:3260', '127.0.0.1:3261', '[::1]:3260'] }), BASE, OPTS).portals).toHaveLength(3);
  });

  it('object form errors', () => {
    expect(issuesOf(minimal({ portals: [{ advertise: '0.0.0.0', tpgt: 0, port: 1 }] }))).toEqual([
      'portals[0].address: required',
      'portals[0].tpgt: 0 is out of range; use an integer from 1 to 65535',
      'portals[0].port: unknown field; known fields here: address, advertise, tpgt',
    ]);
    expect(issuesOf(minimal({ portals: [{ address: '0.0.0.0', advertise: '0.0.0.0' }] }))).toEqual([
      'portals[0].advertise: "0.0.0.0" cannot be advertised; use an address initiators can reach, e.g. "10.0.2.100:3260"',
    ]);
    expect(issuesOf(minimal({ portals: [{ address: '0.0.0.0', advertise: 'x::y' }] }))).toEqual([
      'portals[0].advertise: "x::y" is not host:port; use e.g. "10.0.2.100:3260"',
    ]);
    expect(issuesOf(minimal({ portals: [] }))[0]).toMatch(/^portals: at least one portal is required/);
    expect(issuesOf(minimal({ portals: [5] }))[0]).toMatch(/^portals\[0\]: expected "host:port" or \{/);
  });
});

describe('iSCSI names', () => {
  it.each([
    'iqn.2016-06.org.gluster:node1',
    'iqn.1994-05.com.redhat:8277148d16b2',
    'iqn.2004-10.com.ubuntu:01:3d6e4fa1b2c',
    'iqn.1991-05.com.microsoft:host.example.com',
    'iqn.2016-06.org.gluster',
    'eui.02004567a425678d',
    'naa.52004567ba64678d',
    'naa.52004567ba64678d52004567ba64678d',
  ])('%s is valid', (n) => expect(isValidIscsiName(n)).toBe(true));

  it.each([
    'foo',
    'iqn.2016-13.org.gluster:x',
    'iqn.16-06.org.gluster:x',
    'iqn.2016-06:x',
    'iqn.2016-06.org.gluster:',
    'iqn.2016-06.org.gluster:a b',
    'iqn.2016-06.org.gluster:a_b',
    'eui.02004567a425678',
    'naa.123',
    'IQN.2016-06.org.gluster:x',
  ])('%s is invalid', (n) => expect(isValidIscsiName(n)).toBe(false));

  it('target names are unique', () => {
    const t = { iqn: 'iqn.2016-06.org.gluster:node1', luns: [{ lun: 0, path: '/b' }] };
    expect(issuesOf(minimal({ targets: [minimal().targets[0], t] }))).toEqual([
      'targets[1].iqn: "iqn.2016-06.org.gluster:node1" is already used by targets[0]; target names must be unique',
    ]);
  });
});

describe('LUN identity fields', () => {
  it('validates naa, serial and inquiry strings', () => {
    expect(issuesOf(minimal({}, { naa: '5001405abcdef0123456789abcdef012', serial: 'é', vendor: 'TOOLONGVENDOR', product: '', revision: 1 }))).toEqual([
      'targets[0].luns[0].vendor: "TOOLONGVENDOR" must be 1 to 8 printable ASCII characters, e.g. "GLFS"',
      'targets[0].luns[0].product: "" must be 1 to 16 printable ASCII characters, e.g. "glfs-target"',
      'targets[0].luns[0].revision: expected a string such as "0001", got 1',
      'targets[0].luns[0].serial: "é" must be 1 to 40 printable ASCII characters, e.g. "0123456789abcdef01234567"',
      'targets[0].luns[0].naa: "5001405abcdef0123456789abcdef012" is not an NAA IEEE Registered Extended identifier; use 32 hex digits starting with 6, e.g. "6026c660123456789abcdef012345678"',
    ]);
  });

  it('refuses duplicate serials and NAAs', () => {
    const json = minimal({}, { serial: 'S1', naa: '6' + '0'.repeat(31) });
    json.targets[0]!.luns.push({ lun: 1, path: '/mnt/b.img', serial: 'S1', naa: '6' + '0'.repeat(31) } as never);
    expect(issuesOf(json)).toEqual([
      'targets[0].luns[1].serial: "S1" is already used by targets[0].luns[0]; serial numbers must be unique',
      'targets[0].luns[1].naa: "60000000000000000000000000000000" is already used by targets[0].luns[0]; NAA identifiers must be unique',
    ]);
  });
});

describe('paths', () => {
  it('resolves relative LUN paths and secret files against the config directory', () => {
    const cfg = parseConfig(
      minimal({}, { path: 'disks/a.img' }, { acl: [{ initiator: '*', chap: { username: 'u', secretFile: 'chap.secret' } }] }),
      '/etc/glfs',
      OPTS,
    );
    expect(cfg.targets[0]!.luns[0]!.path).toBe('/etc/glfs/disks/a.img');
    expect(cfg.targets[0]!.acl[0]!.chap).toEqual({ username: 'u', secretFile: '/etc/glfs/chap.secret' });
  });

  it('refuses the same file for two LUNs', () => {
    const json = minimal({}, { path: 'a.img' });
    json.targets.push({ iqn: 'iqn.2016-06.org.gluster:node2', luns: [{ lun: 0, path: '/etc/glfs/a.img' }] });
    expect(issuesOf(json)).toEqual([
      'targets[1].luns[0].path: "/etc/glfs/a.img" is already used by targets[0].luns[0]; each LUN needs its own file',
    ]);
  });
});

describe('acl and CHAP', () => {
  it('acl omitted = any initiator; [] = nobody', () => {
    expect(parseConfig(minimal({}, {}, { acl: [] }), BASE, OPTS).targets[0]!.acl).toEqual([]);
  });

  it('accepts CHAP settings', () => {
    const chap = { username: 'in', secretEnv: 'IN_SECRET', mutual: { username: 'out', secret: 'outsecret123' } };
    const cfg = parseConfig(minimal({}, {}, { acl: [{ initiator: 'iqn.1994-05.com.redhat:abc', readOnly: true, chap }] }), BASE, OPTS);
    expect(cfg.targets[0]!.acl).toEqual([{ initiator: 'iqn.1994-05.com.redhat:abc', readOnly: true, chap }]);
  });

  it('validates CHAP settings', () => {
    const acl = [
      { initiator: '*', chap: { username: 'a' } },
      { initiator: 'iqn.1994-05.com.redhat:b', chap: { username: 'b', secret: 's', secretFile: 'f' } },
      { initiator: 'iqn.1994-05.com.redhat:c', chap: { username: 'c', secret: 'same', mutual: { username: 'm', secret: 'same' } } },
      { initiator: 'iqn.1994-05.com.redhat:d', chap: { secretEnv: '1BAD', pasword: 'x' } },
      { initiator: '*' },
    ];
    expect(issuesOf(minimal({}, {}, { acl }))).toEqual([
      'targets[0].acl[3].chap.username: required',
      'targets[0].acl[3].chap.secretEnv: "1BAD" is not an environment variable name; use e.g. "GLFS_CHAP_SECRET"',
      'targets[0].acl[3].chap.pasword: unknown field; known fields here: username, secret, secretFile, secretEnv, mutual',
      'targets[0].acl[0].chap: one of secret, secretFile or secretEnv is required',
      'targets[0].acl[1].chap: give only one of secret, secretFile or secretEnv (found secret, secretFile)',
      'targets[0].acl[2].chap.mutual.secret: must differ from chap.secret: the iSCSI RFCs forbid using one CHAP secret in both directions',
      'targets[0].acl[4].initiator: "*" is listed twice (also targets[0].acl[0]); merge the entries',
    ]);
  });
});

describe('iscsi settings', () => {
  it('ranges and digests', () => {
    expect(
      issuesOf(
        minimal({
          iscsi: { maxRecvDataSegmentLength: 100, defaultTime2Retain: 3601, headerDigest: [], dataDigest: ['CRC32C', 'crc32c'], initialR2T: 1, loginTimeout: 1.5 },
        }),
      ),
    ).toEqual([
      'iscsi.maxRecvDataSegmentLength: 100 is out of range; use an integer from 512 to 16777215',
      'iscsi.loginTimeout: expected an integer from 1 to 3600, got 1.5',
      'iscsi.defaultTime2Retain: 3601 is out of range; use an integer from 0 to 3600',
      'iscsi.initialR2T: expected true or false, got 1',
      'iscsi.headerDigest: expected a non-empty list; use a list of "CRC32C" and/or "None" in order of preference, e.g. ["None", "CRC32C"]',
      'iscsi.dataDigest: "crc32c" is not a digest; use a list of "CRC32C" and/or "None" in order of preference, e.g. ["None", "CRC32C"]',
    ]);
  });

  it('firstBurstLength <= maxBurstLength', () => {
    expect(issuesOf(minimal({ iscsi: { firstBurstLength: 65536, maxBurstLength: 8192 } }))).toEqual([
      'iscsi.firstBurstLength: 65536 is larger than iscsi.maxBurstLength (8192); use at most 8192',
    ]);
    expect(issuesOf(minimal({ iscsi: { maxBurstLength: 8192 } }))).toEqual([
      'iscsi.maxBurstLength: 8192 is smaller than iscsi.firstBurstLength (262144, the default); use at least 262144 or lower firstBurstLength',
    ]);
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'glfs-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function load(name: string, text: string) {
    const file = path.join(dir, name);
    await writeFile(file, text);
    return loadConfigFile(file);
  }
  async function loadIssues(name: string, text: string): Promise<string[]> {
    try {
      await load(name, text);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).issues.map((i) => i.replace(dir + path.sep, ''));
    }
    throw new Error('expected a ConfigError');
  }

  it('loads a file and resolves paths against its directory', async () => {
    const cfg = await load('ok.json', '\ufeff' + JSON.stringify(minimal({}, { path: 'lun0.img' }), null, 2));
    expect(cfg.targets[0]!.luns[0]!.path).toBe(path.join(dir, 'lun0.img'));
  });

  it('reports a missing file', async () => {
    await expect(loadConfigFile(path.join(dir, 'nope.json'))).rejects.toMatchObject({
      issues: [`${path.join(dir, 'nope.json')}: cannot read the config file: no such file`],
    });
    await expect(loadConfigFile(dir)).rejects.toMatchObject({ issues: [`${dir}: cannot read the config file: is a directory, not a file`] });
  });

  it.each([
    ['trailing comma', '{\n  "targets": [],\n}', 'c1.json:3:1: invalid JSON: trailing comma before "}"'],
    ['missing comma', '{\n  "a": 1\n  "b": 2\n}', 'c2.json:3:3: invalid JSON: expected "," or "}" after the property value'],
    ['comment', '{\n  // hi\n}', 'c3.json:2:3: invalid JSON: comments are not allowed in JSON'],
    ['unterminated string', '{\n  "a": "abc\n}', 'c4.json:2:12: invalid JSON: line break inside a string (missing closing quote?)'],
    ['empty', '  \n', 'c5.json:2:1: invalid JSON: the file is empty; expected a JSON object'],
    ['single quotes', "{ 'a': 1 }", "c6.json:1:3: invalid JSON: property names must use double quotes"],
    ['bare word', '{ "a": yes }', 'c7.json:1:8: invalid JSON: unexpected "yes"; strings must be in double quotes'],
    ['truncated', '{ "a": [1, 2', 'c8.json:1:13: invalid JSON: unexpected end of file; missing "]"?'],
    ['trailing garbage', '{} x', 'c9.json:1:4: invalid JSON: unexpected text after the end of the JSON value'],
    ['array trailing comma', '[1,\n 2,\n]', 'c10.json:3:1: invalid JSON: trailing comma before "]"'],
  ])('JSON syntax error: %s', async (_name, text, expected) => {
    const name = expected.split(':')[0]!;
    expect(await loadIssues(name, text)).toEqual([expected]);
  });

  it('reports duplicate keys along with other issues', async () => {
    const text = '{\n  "targets": [{\n    "iqn": "iqn.2016-06.org.gluster:a",\n    "iqn": "foo",\n    "luns": [{"lun": 0, "path": "x"}]\n  }]\n}';
    expect(await loadIssues('dup.json', text)).toEqual([
      'targets[0].iqn: defined twice (second time at dup.json:4:5); JSON keeps only the last one, remove one',
      'targets[0].iqn: "foo" is not an iSCSI name; use e.g. "iqn.2016-06.org.gluster:node1"',
    ]);
  });
});

describe('embeddedDefaultConfig', () => {
  it('one target, one sparse 1 GiB LUN in dataDir, loopback portal', () => {
    const cfg = embeddedDefaultConfig({ dataDir: '/tmp/d', port: 3300, env: {}, cwd: '/x' });
    expect(cfg.portals).toEqual([{ host: '127.0.0.1', port: 3300, tpgt: 1 }]);
    expect(cfg.dataDir).toBe('/tmp/d');
    expect(cfg.targets).toHaveLength(1);
    expect(cfg.targets[0]!.iqn).toBe(DEFAULT_TARGET_IQN);
    expect(cfg.targets[0]!.acl).toEqual([{ initiator: '*', readOnly: false }]);
    expect(cfg.targets[0]!.luns[0]).toMatchObject({ lun: 0, path: '/tmp/d/lun0.img', sizeBytes: 2 ** 30, blockSize: 512 });
    expect(configWarnings(cfg)).toEqual([]);
  });

  it('defaults: $GLFS_TARGET_DATA_DIR, else ./data; port 3260', () => {
    expect(embeddedDefaultConfig({ env: {}, cwd: '/x' }).dataDir).toBe('/x/data');
    expect(embeddedDefaultConfig({ env: {}, cwd: '/x' }).portals[0]!.port).toBe(3260);
    expect(embeddedDefaultConfig({ env: { GLFS_TARGET_DATA_DIR: 'st' }, cwd: '/x' }).targets[0]!.luns[0]!.path).toBe('/x/st/lun0.img');
    expect(embeddedDefaultConfig({ dataDir: 'rel', env: {}, cwd: '/x' }).dataDir).toBe('/x/rel');
  });
});

describe('configWarnings and maskSecrets', () => {
  it('warns about open and closed targets', () => {
    const open = parseConfig(minimal(), BASE, OPTS);
    expect(configWarnings(open)).toEqual([
      'targets[0] iqn.2016-06.org.gluster:node1: any initiator may log in without authentication (acl allows "*"); list initiator names in targets[0].acl or add CHAP',
    ]);
    expect(configWarnings(parseConfig(minimal({}, {}, { acl: [] }), BASE, OPTS))).toEqual([
      'targets[0] iqn.2016-06.org.gluster:node1: acl is empty, so no initiator can log in',
    ]);
    expect(configWarnings(parseConfig(minimal({ portals: ['127.0.0.1', '[::1]'] }), BASE, OPTS))).toEqual([]);
    expect(
      configWarnings(parseConfig(minimal({}, {}, { acl: [{ initiator: '*', chap: { username: 'u', secret: 'x' } }] }), BASE, OPTS)),
    ).toEqual([]);
  });

  it('masks secrets only', () => {
    const cfg = parseConfig(
      minimal({}, {}, { acl: [{ initiator: '*', chap: { username: 'u', secret: 'hunter2', mutual: { username: 't', secretFile: '/s' } } }] }),
      BASE,
      OPTS,
    );
    const masked = maskSecrets(cfg);
    expect(masked.targets[0]!.acl[0]!.chap).toEqual({ username: 'u', secret: '***', mutual: { username: 't', secretFile: '/s' } });
    expect((cfg.targets[0]!.acl[0]!.chap as { secret: string }).secret).toBe('hunter2');
    expect(JSON.stringify(masked)).not.toContain('hunter2');
  });
});
