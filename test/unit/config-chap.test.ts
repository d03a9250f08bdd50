import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_CHAP_SECRET_BYTES, resolveChapSecrets, type ChapConfig } from '../../src/config/chap.js';
import { ConfigError, DEFAULT_ISCSI_SETTINGS, loadConfigFile, maskSecrets, parseConfig } from '../../src/config/load.js';

const BASE = '/etc/glfs';
const OPTS = { env: {}, cwd: '/srv/work' };
const INI = 'iqn.1994-05.com.redhat:8277148d16b2';
const GOOD = 'twelve-bytes-plus';
const GOOD2 = 'another-good-secret';

function config(extra: Record<string, unknown> = {}, acl: unknown[] = [{ initiator: INI, chap: { username: 'u', secret: GOOD } }]) {
  return { targets: [{ iqn: 'iqn.2016-06.org.gluster:node1', luns: [{ lun: 0, path: '/mnt/a.img' }], acl }], ...extra };
}

function issuesOf(json: unknown): string[] {
  try {
    parseConfig(json, BASE, OPTS);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'glfs-chap-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('config: discovery.chap', () => {
  it('parses discovery CHAP with the same shape as acl[].chap (secretFile relative to the config file)', () => {
    const cfg = parseConfig(
      config({ discovery: { chap: { username: 'disc', secretFile: 'disc.secret', mutual: { username: 'tgt', secretEnv: 'DISC_MUTUAL' } } } }),
      BASE,
      OPTS,
    );
    expect(cfg.discovery).toEqual({
      chap: { username: 'disc', secretFile: '/etc/glfs/disc.secret', mutual: { username: 'tgt', secretEnv: 'DISC_MUTUAL' } },
    });
  });

  it('no discovery section: open discovery, no field', () => {
    expect(parseConfig(config(), BASE, OPTS).discovery).toBeUndefined();
    expect(parseConfig(config({ discovery: {} }), BASE, OPTS).discovery).toBeUndefined();
  });

  it('reports problems in discovery like in ACL entries', () => {
    expect(issuesOf(config({ discovery: { chap: { username: 'd' }, extra: 1 } }))).toEqual([
      'discovery.extra: unknown field; known fields here: chap',
      'discovery.chap: one of secret, secretFile or secretEnv is required',
    ]);
    expect(issuesOf(config({ discovery: { chap: { username: 'd', secret: GOOD, mutual: { username: 'm', secret: GOOD } } } }))).toEqual([
      'discovery.chap.mutual.secret: must differ from chap.secret: the iSCSI RFCs forbid using one CHAP secret in both directions',
    ]);
    expect(issuesOf(config({ discovery: { chap: { username: 'd', secret: GOOD, secretEnv: 'X' } } }))).toEqual([
      'discovery.chap: give only one of secret, secretFile or secretEnv (found secret, secretEnv)',
    ]);
  });

  it('masks discovery secrets', () => {
    const cfg = parseConfig(config({ discovery: { chap: { username: 'd', secret: GOOD } } }), BASE, OPTS);
    expect(JSON.stringify(maskSecrets(cfg))).not.toContain(GOOD);
  });

  it('never echoes a secret value of the wrong type', () => {
    const issues = issuesOf(config({}, [{ initiator: INI, chap: { username: 'u', secret: 123456789012345 } }]));
    expect(issues).toEqual(['targets[0].acl[0].chap.secret: expected a string (the value is not shown)']);
  });
});

describe('config: authentication back-off and login cap settings', () => {
  it('has defaults', () => {
    expect(DEFAULT_ISCSI_SETTINGS).toMatchObject({ maxPendingLoginsPerAddress: 16, authBackoffAfter: 5, authBackoffInitial: 1, authBackoffMax: 60 });
    expect(parseConfig(config(), BASE, OPTS).iscsi).toMatchObject({ authBackoffAfter: 5 });
  });
  it('accepts 0 (disabled) and checks ranges', () => {
    expect(parseConfig(config({ iscsi: { authBackoffAfter: 0 } }), BASE, OPTS).iscsi.authBackoffAfter).toBe(0);
    expect(issuesOf(config({ iscsi: { authBackoffMax: 0, maxPendingLoginsPerAddress: 0 } }))).toEqual([
      'iscsi.maxPendingLoginsPerAddress: 0 is out of range; use an integer from 1 to 65535',
      'iscsi.authBackoffMax: 0 is out of range; use an integer from 1 to 86400',
    ]);
  });
  it('refuses an initial back-off above the maximum', () => {
    expect(issuesOf(config({ iscsi: { authBackoffInitial: 120 } }))).toEqual([
      'iscsi.authBackoffInitial: iscsi.authBackoffInitial (120) is larger than iscsi.authBackoffMax (60); the back-off starts at the first and doubles up to the second',
    ]);
  });
});

describe('resolveChapSecrets', () => {
  const chapOf = (c: ChapConfig) => ({ targets: [{ iqn: 't', luns: [], acl: [{ initiator: INI, readOnly: false, chap: c }] }] });

  it('reads inline, file (one trailing newline dropped) and environment secrets', async () => {
    const file = path.join(dir, 'file.secret');
    await writeFile(file, `${GOOD2}\n`);
    const a: ChapConfig = { username: 'a', secret: GOOD };
    const b: ChapConfig = { username: 'b', secretFile: file };
    const c: ChapConfig = { username: 'c', secretEnv: 'CHAP_C', mutual: { username: 'm', secretEnv: 'CHAP_M' } };
    const disc: ChapConfig = { username: 'd', secret: 'discovery-secret' };
    const { keyring, issues } = await resolveChapSecrets(
      {
        targets: [{ iqn: 't', luns: [], acl: [{ initiator: 'a', readOnly: false, chap: a }, { initiator: 'b', readOnly: false, chap: b }, { initiator: 'c', readOnly: false, chap: c }] }],
        discovery: { chap: disc },
      },
      { CHAP_C: 'env-secret-value', CHAP_M: 'env-mutual-value' },
    );
    expect(issues).toEqual([]);
    expect(keyring.get(a)!.secret.toString()).toBe(GOOD);
    expect(keyring.get(b)!.secret.toString()).toBe(GOOD2);
    expect(keyring.get(c)).toMatchObject({ username: 'c', mutual: { username: 'm' } });
    expect(keyring.get(c)!.mutual!.secret.toString()).toBe('env-mutual-value');
    expect(keyring.get(disc)!.secret.toString()).toBe('discovery-secret');
    expect(keyring.discovery!.username).toBe('d');
  });

  it(`refuses secrets shorter than ${MIN_CHAP_SECRET_BYTES} bytes from every source, without showing them`, async () => {
    const file = path.join(dir, 'short.secret');
    await writeFile(file, 'short-file\n');
    const { issues } = await resolveChapSecrets(
      {
        targets: [{
          iqn: 't', luns: [], acl: [
            { initiator: 'a', readOnly: false, chap: { username: 'a', secret: 'elevenbytes' } },
            { initiator: 'b', readOnly: false, chap: { username: 'b', secretFile: file } },
            { initiator: 'c', readOnly: false, chap: { username: 'c', secret: GOOD, mutual: { username: 'm', secretEnv: 'SHORT' } } },
            { initiator: 'd', readOnly: false, chap: { username: 'd', secret: 'twelve-bytes' } },
          ],
        }],
      },
      { SHORT: 'tiny' },
    );
    expect(issues).toHaveLength(3);
    expect(issues[0]).toMatch(/^targets\[0\]\.acl\[0\]\.chap\.secret: the secret is 11 bytes long; CHAP secrets must be at least 12 bytes/);
    expect(issues[1]).toMatch(new RegExp(`^targets\\[0\\]\\.acl\\[1\\]\\.chap\\.secretFile: the secret in ${file} is 10 bytes long`));
    expect(issues[2]).toMatch(/^targets\[0\]\.acl\[2\]\.chap\.mutual\.secretEnv: the secret in \$SHORT is 4 bytes long/);
    for (const i of issues) expect(i).not.toMatch(/elevenbytes|short-file|tiny/);
  });

  it('counts bytes, not characters', async () => {
    const { issues } = await resolveChapSecrets(chapOf({ username: 'u', secret: 'ééééé1' })); // 11 bytes
    expect(issues).toHaveLength(1);
    expect((await resolveChapSecrets(chapOf({ username: 'u', secret: 'éééééé' }))).issues).toEqual([]); // 12 bytes
  });

  it('refuses a mutual secret equal to the initiator secret, whatever the sources', async () => {
    const file = path.join(dir, 'same.secret');
    await writeFile(file, `${GOOD}\n`);
    const { issues } = await resolveChapSecrets(chapOf({ username: 'u', secretEnv: 'S', mutual: { username: 'm', secretFile: file } }), { S: GOOD });
    expect(issues).toEqual([
      'targets[0].acl[0].chap.mutual.secretFile: the mutual (target) secret is the same as the initiator\'s secret (targets[0].acl[0].chap.secretEnv); the iSCSI RFCs forbid using one CHAP secret in both directions, use another one',
    ]);
  });

  it('reports unreadable files, empty files and unset variables', async () => {
    const empty = path.join(dir, 'empty.secret');
    await writeFile(empty, '\n');
    const r1 = await resolveChapSecrets(chapOf({ username: 'u', secretFile: path.join(dir, 'missing') }));
    expect(r1.issues).toEqual([`targets[0].acl[0].chap.secretFile: cannot read CHAP secret file ${path.join(dir, 'missing')}: ENOENT`]);
    const r2 = await resolveChapSecrets(chapOf({ username: 'u', secretFile: empty }));
    expect(r2.issues).toEqual([`targets[0].acl[0].chap.secretFile: CHAP secret file ${empty} is empty`]);
    const r3 = await resolveChapSecrets(chapOf({ username: 'u', secretEnv: 'NOPE' }), {});
    expect(r3.issues).toEqual(['targets[0].acl[0].chap.secretEnv: environment variable NOPE (CHAP secret) is not set']);
    if (process.getuid?.() !== 0) {
      const locked = path.join(dir, 'locked.secret');
      await writeFile(locked, GOOD);
      await chmod(locked, 0o000);
      const r4 = await resolveChapSecrets(chapOf({ username: 'u', secretFile: locked }));
      expect(r4.issues).toEqual([`targets[0].acl[0].chap.secretFile: cannot read CHAP secret file ${locked}: EACCES`]);
    }
  });

  it('checks discovery.chap too', async () => {
    const { issues } = await resolveChapSecrets({ targets: [], discovery: { chap: { username: 'd', secret: 'short' } } });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^discovery\.chap\.secret: the secret is 5 bytes long/);
  });
});

describe('loadConfigFile reads and checks CHAP secrets', () => {
  const write = async (name: string, json: unknown) => {
    const f = path.join(dir, name);
    await writeFile(f, JSON.stringify(json));
    return f;
  };

  it('accepts good secrets from a file relative to the config and from the environment', async () => {
    await writeFile(path.join(dir, 'good.secret'), GOOD2);
    const f = await write('good.json', config({ discovery: { chap: { username: 'd', secretEnv: 'DISC' } } }, [
      { initiator: INI, chap: { username: 'u', secretFile: 'good.secret' } },
    ]));
    const cfg = await loadConfigFile(f, { env: { DISC: 'discovery-secret' } });
    expect(cfg.targets[0]!.acl[0]!.chap).toEqual({ username: 'u', secretFile: path.join(dir, 'good.secret') });
    expect(cfg.discovery?.chap).toEqual({ username: 'd', secretEnv: 'DISC' });
  });

  it('refuses the file with every secret problem, never showing a secret', async () => {
    const f = await write('bad.json', config({ discovery: { chap: { username: 'd', secret: 'disc-short' } } }, [
      { initiator: INI, chap: { username: 'u', secret: 'hunter2' } },
      { initiator: '*', chap: { username: 'any', secretFile: 'absent.secret' } },
    ]));
    let err: unknown;
    try {
      await loadConfigFile(f, { env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    expect(issues.map((i) => i.split(':')[0])).toEqual([
      'discovery.chap.secret',
      'targets[0].acl[0].chap.secret',
      'targets[0].acl[1].chap.secretFile',
    ]);
    expect((err as Error).message).not.toMatch(/hunter2|disc-short/);
  });
});
