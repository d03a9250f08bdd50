/**
 * Authentication and access control against real initiators (libiscsi's iscsi-inq / iscsi-ls /
 * iscsi-test-cu, and qemu-io): CHAP one-way and mutual, discovery CHAP, per-initiator ACLs,
 * read-only ACL entries, and SIGHUP reload — with the built server (dist/) as a separate process.
 *
 * libiscsi 1.19 speaks CHAP with MD5 only (CHAP_A=5); the other algorithms are covered by
 * test/unit/auth-*.test.ts against vectors computed with openssl.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  describeRun, prereqs, QemuIoSession, run, sleep, startGlfsTarget, tempDir, type RunResult, type TargetHandle,
} from './harness.js';

const pre = prereqs({ tools: ['iscsi-ls', 'iscsi-inq', 'iscsi-test-cu', 'qemu-io'], server: true });

const T1 = 'iqn.2016-06.org.gluster:auth-t1';
const T2 = 'iqn.2016-06.org.gluster:auth-t2';
const T3 = 'iqn.2016-06.org.gluster:auth-t3';
const INI_A = 'iqn.1994-05.com.redhat:e2e-node-a'; // T1: CHAP + mutual
const INI_B = 'iqn.1994-05.com.redhat:e2e-node-b'; // T1: CHAP
const INI_C = 'iqn.1994-05.com.redhat:e2e-node-c'; // T2: no CHAP
const INI_RO = 'iqn.1994-05.com.redhat:e2e-node-ro'; // T1: CHAP, read-only
const STRANGER = 'iqn.1994-05.com.redhat:e2e-stranger'; // only T3's "*" entry
const SECRET_A = 'a-secret-for-node-a';
const SECRET_B = 'b-secret-for-node-b';
const SECRET_B2 = 'b-secret-rotated-2';
const SECRET_RO = 'ro-secret-for-node-ro';
const MUTUAL_T1 = 't1-answers-with-this';
const ANY = 'secret-for-anyone-t3';
const DISC = 'discovery-secret-xyz';
const SECRETS = [SECRET_A, SECRET_B, SECRET_B2, SECRET_RO, MUTUAL_T1, ANY, DISC];

/** libiscsi reads CHAP credentials from these too: make sure the host environment does not leak in. */
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIBISCSI_')));

function authConfig(dir: string, secretB = SECRET_B): Record<string, unknown> {
  const lun = (name: string) => [{ lun: 0, path: join(dir, `${name}.img`), size: '16M', create: true }];
  return {
    discovery: { chap: { username: 'disc', secretFile: join(dir, 'disc.secret') } },
    targets: [
      {
        iqn: T1, luns: lun('t1'), acl: [
          { initiator: INI_A, chap: { username: 'user-a', secret: SECRET_A, mutual: { username: 'target-t1', secretEnv: 'GLFS_E2E_T1_MUTUAL' } } },
          { initiator: INI_B, chap: { username: 'user-b', secret: secretB } },
          { initiator: INI_RO, readOnly: true, chap: { username: 'user-ro', secret: SECRET_RO } },
        ],
      },
      { iqn: T2, luns: lun('t2'), acl: [{ initiator: INI_C }] },
      { iqn: T3, luns: lun('t3'), acl: [{ initiator: '*', chap: { username: 'any', secretFile: join(dir, 'any.secret') } }] },
    ],
  };
}

describe.skipIf(pre.skip)('authentication and access control with real initiators', () => {
  let t: TargetHandle;
  let tmp: ReturnType<typeof tempDir>;
  const portal = () => `127.0.0.1:${t.port}`;
  const url = (iqn: string, creds?: string, query = '') => `iscsi://${creds !== undefined ? `${creds}@` : ''}${portal()}/${iqn}/0${query}`;
  const inq = (initiator: string, u: string) => run('iscsi-inq', ['-i', initiator, u], { timeout: 20_000, env: ENV });
  const ls = (initiator: string, u: string) => run('iscsi-ls', ['-i', initiator, u], { timeout: 20_000, env: ENV });
  const listed = (r: RunResult) => [...r.stdout.matchAll(/^Target:(\S+) Portal:/gm)].map((m) => m[1]).sort();
  const output = (r: RunResult) => `${r.stdout}\n${r.stderr}`;

  function allowed(r: RunResult): void {
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout, describeRun(r)).toMatch(/Peripheral Device Type:DIRECT_ACCESS/);
  }
  function refused(r: RunResult, why: RegExp): void {
    expect(r.code, describeRun(r)).not.toBe(0);
    expect(output(r), describeRun(r)).toMatch(why);
  }
  const AUTHENTICATION = /Authentication failure\(513\)/;
  const AUTHORIZATION = /Authorization failure\(514\)/;

  beforeAll(async () => {
    pre.assert();
    tmp = tempDir('glfs-auth-e2e-');
    writeFileSync(join(tmp.dir, 'disc.secret'), `${DISC}\n`);
    writeFileSync(join(tmp.dir, 'any.secret'), `${ANY}\n`);
    t = await startGlfsTarget({
      extra: authConfig(tmp.dir),
      // The suite refuses logins on purpose, all from 127.0.0.1: no back-off (unit-tested separately).
      iscsi: { authBackoffAfter: 0 },
      env: { GLFS_E2E_T1_MUTUAL: MUTUAL_T1 },
    });
  });

  afterAll(async () => {
    await t?.stop();
    tmp?.cleanup();
  });

  describe('normal sessions (iscsi-inq)', () => {
    test('one-way CHAP: the right initiator, user and secret log in', async () => {
      allowed(await inq(INI_B, url(T1, `user-b%${SECRET_B}`)));
    });

    test('mutual CHAP: the target proves the secret the initiator expects', async () => {
      allowed(await inq(INI_A, url(T1, `user-a%${SECRET_A}`, `?target_user=target-t1&target_password=${MUTUAL_T1}`)));
    });

    test('an entry with mutual credentials also accepts one-way CHAP', async () => {
      allowed(await inq(INI_A, url(T1, `user-a%${SECRET_A}`)));
    });

    test('"*" entry with a secret from a file; an entry without CHAP', async () => {
      allowed(await inq(STRANGER, url(T3, `any%${ANY}`)));
      allowed(await inq(INI_C, url(T2)));
    });

    test('refused: unknown initiator (0x0202)', async () => {
      refused(await inq(STRANGER, url(T1, `user-b%${SECRET_B}`)), AUTHORIZATION);
    });

    test('refused: initiator of another target\'s ACL (0x0202)', async () => {
      refused(await inq(INI_C, url(T1, `user-b%${SECRET_B}`)), AUTHORIZATION);
      refused(await inq(INI_B, url(T2)), AUTHORIZATION);
    });

    test('refused: missing CHAP (0x0201)', async () => {
      refused(await inq(INI_B, url(T1)), AUTHENTICATION);
      refused(await inq(STRANGER, url(T3)), AUTHENTICATION);
    });

    test('refused: wrong user (0x0201)', async () => {
      refused(await inq(INI_B, url(T1, `user-a%${SECRET_B}`)), AUTHENTICATION);
    });

    test('refused: wrong secret (0x0201)', async () => {
      refused(await inq(INI_B, url(T1, 'user-b%not-the-secret-of-b')), AUTHENTICATION);
    });

    test('refused: another initiator\'s secret, or its whole credentials (0x0201)', async () => {
      refused(await inq(INI_B, url(T1, `user-b%${SECRET_A}`)), AUTHENTICATION);
      refused(await inq(INI_B, url(T1, `user-a%${SECRET_A}`)), AUTHENTICATION);
    });

    test('refused by the initiator: a mutual CHAP whose target secret it does not expect', async () => {
      refused(
        await inq(INI_A, url(T1, `user-a%${SECRET_A}`, '?target_user=target-t1&target_password=what-a-expects-xx')),
        /Invalid CHAP_R response from the target/,
      );
      refused(await inq(INI_A, url(T1, `user-a%${SECRET_A}`, `?target_user=someone-else&target_password=${MUTUAL_T1}`)), /Wrong CHAP targetname/);
    });

    test('refused: mutual CHAP for an entry without mutual credentials (0x0201)', async () => {
      refused(await inq(INI_B, url(T1, `user-b%${SECRET_B}`, `?target_user=target-t1&target_password=${MUTUAL_T1}`)), AUTHENTICATION);
    });
  });

  describe('discovery (iscsi-ls)', () => {
    test('refused without discovery CHAP, or with wrong credentials (0x0201)', async () => {
      refused(await ls(INI_A, `iscsi://${portal()}`), AUTHENTICATION);
      refused(await ls(INI_A, `iscsi://disc%wrong-discovery-secret@${portal()}`), AUTHENTICATION);
      refused(await ls(INI_A, `iscsi://user-a%${SECRET_A}@${portal()}`), AUTHENTICATION);
    });

    test('lists exactly the targets each initiator may log into', async () => {
      for (const [ini, expected] of [[INI_A, [T1, T3]], [INI_RO, [T1, T3]], [INI_C, [T2, T3]], [STRANGER, [T3]]] as const) {
        const r = await ls(ini, `iscsi://disc%${DISC}@${portal()}`);
        expect(r.code, describeRun(r)).toBe(0);
        expect(listed(r), describeRun(r)).toEqual([...expected].sort());
      }
    });
  });

  describe('read-only ACL entry', () => {
    const roOpts = (secret = SECRET_RO) =>
      ['driver=raw', 'file.driver=iscsi', 'file.transport=tcp', `file.portal=${portal()}`, `file.target=${T1}`, 'file.lun=0',
        `file.initiator-name=${INI_RO}`, 'file.user=user-ro', `file.password=${secret}`].join(',');

    test('qemu-io reads; opening it for writing fails because MODE SENSE reports write protection', async () => {
      const lunFile = join(tmp.dir, 't1.img');
      // Put a pattern there through a read-write entry first.
      const rw = ['driver=raw', 'file.driver=iscsi', 'file.transport=tcp', `file.portal=${portal()}`, `file.target=${T1}`, 'file.lun=0',
        `file.initiator-name=${INI_B}`, 'file.user=user-b', `file.password=${SECRET_B}`].join(',');
      const w = await run('qemu-io', ['--image-opts', '-c', 'write -P 0x5a 0 65536', rw], { timeout: 30_000 });
      expect(w.code, describeRun(w)).toBe(0);
      expect(w.stdout).toMatch(/wrote 65536\/65536 bytes/);

      const r = await run('qemu-io', ['-r', '--image-opts', '-c', 'read -P 0x5a 0 65536', roOpts()], { timeout: 30_000 });
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout, describeRun(r)).toMatch(/read 65536\/65536 bytes/);

      const rwOpen = await run('qemu-io', ['--image-opts', '-c', 'write -P 0xee 0 65536', roOpts()], { timeout: 30_000 });
      expect(rwOpen.code, describeRun(rwOpen)).not.toBe(0);
      expect(output(rwOpen), describeRun(rwOpen)).toMatch(/write protected/i);
      expect(readFileSync(lunFile).subarray(0, 65536).every((b) => b === 0x5a)).toBe(true);
    });

    test('iscsi-test-cu ReadOnlySBC: WRITE(10/12/16), WRITE SAME, UNMAP all fail with DATA PROTECT / WRITE PROTECTED', async () => {
      const lunFile = join(tmp.dir, 't1.img');
      const before = readFileSync(lunFile).subarray(0, 1 << 20);
      const cu = (initiator: string, creds: string) =>
        run('iscsi-test-cu', ['-d', '-n', '-t', 'ALL.ReadOnly.ReadOnlySBC', '-i', initiator, url(T1, creds)], { timeout: 60_000, env: ENV });
      const ro = await cu(INI_RO, `user-ro%${SECRET_RO}`);
      expect(ro.code, describeRun(ro)).toBe(0);
      const asserts = (r: RunResult) => /asserts\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(r.stdout)?.slice(1).map(Number);
      const [, ranRo, passedRo, failedRo] = asserts(ro) ?? [];
      expect(failedRo, describeRun(ro)).toBe(0);
      expect(passedRo).toBe(ranRo);
      // Through the read-write entry the same test skips itself (the LUN is not write protected there):
      // the read-only run must have made more checks (the write attempts).
      const rw = await cu(INI_B, `user-b%${SECRET_B}`);
      expect(rw.code, describeRun(rw)).toBe(0);
      expect(ranRo! - asserts(rw)![1]!, `${describeRun(ro)}\n${describeRun(rw)}`).toBeGreaterThanOrEqual(5);
      expect(readFileSync(lunFile).subarray(0, 1 << 20).equals(before)).toBe(true);
    });
  });

  describe('SIGHUP reload', () => {
    const waitLog = async (pattern: RegExp, after: number, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (pattern.test(t.logs().slice(after))) return;
        await sleep(50);
      }
      throw new Error(`log line ${pattern} did not appear\n${t.logs().slice(after)}`);
    };

    test('new secrets apply to new logins, established sessions stay, an invalid file is rejected', async () => {
      const rwB = (secret: string) => ['driver=raw', 'file.driver=iscsi', 'file.transport=tcp', `file.portal=${portal()}`, `file.target=${T1}`,
        'file.lun=0', `file.initiator-name=${INI_B}`, 'file.user=user-b', `file.password=${secret}`].join(',');
      const session = await QemuIoSession.open(rwB(SECRET_B), { imageOpts: true });
      try {
        expect(await session.cmd('read 0 4096')).toMatch(/read 4096\/4096 bytes/);

        // Rotate node-b's secret.
        const config = JSON.parse(readFileSync(t.configPath!, 'utf8')) as Record<string, unknown>;
        writeFileSync(t.configPath!, JSON.stringify({ ...config, ...authConfig(tmp.dir, SECRET_B2) }, null, 2));
        let mark = t.logs().length;
        process.kill(t.pid()!, 'SIGHUP');
        await waitLog(/configuration reloaded/, mark);

        expect(await session.cmd('write -P 0x33 4096 4096')).toMatch(/wrote 4096\/4096 bytes/); // still logged in
        refused(await inq(INI_B, url(T1, `user-b%${SECRET_B}`)), AUTHENTICATION);
        allowed(await inq(INI_B, url(T1, `user-b%${SECRET_B2}`)));

        // An invalid file (too short a secret): refused with its errors, the old one stays in force.
        writeFileSync(t.configPath!, JSON.stringify({ ...config, ...authConfig(tmp.dir, 'too-short') }, null, 2));
        mark = t.logs().length;
        process.kill(t.pid()!, 'SIGHUP');
        await waitLog(/reload refused, keeping the current configuration/, mark);
        expect(t.logs().slice(mark)).toMatch(/targets\[0\]\.acl\[1\]\.chap\.secret: the secret is 9 bytes long/);
        allowed(await inq(INI_B, url(T1, `user-b%${SECRET_B2}`)));
        refused(await inq(INI_B, url(T1, 'user-b%too-short')), AUTHENTICATION);
        expect(await session.cmd('read -P 0x33 4096 4096')).toMatch(/read 4096\/4096 bytes/);
      } finally {
        await session.close();
      }
    });
  });

  test('the server log names every refusal with initiator and address, and never contains a secret', () => {
    const logs = t.logs();
    for (const s of [...SECRETS, 'not-the-secret-of-b', 'wrong-discovery-secret', 'what-a-expects-xx', 'too-short']) {
      expect(logs, `secret ${s} in the log`).not.toContain(s);
    }
    expect(logs).not.toMatch(/CHAP_[RCNI]=/);
    const refusals = logs.split('\n').filter((l) => l.includes('"login refused"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(refusals.length).toBeGreaterThanOrEqual(15);
    for (const r of refusals) {
      expect(r.initiator, JSON.stringify(r)).toMatch(/^iqn\./);
      expect(r.remote, JSON.stringify(r)).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(r.status, JSON.stringify(r)).toMatch(/^0x020[12]$/);
    }
  });
});
