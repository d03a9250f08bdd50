/**
 * CHAP, ACLs and login hardening at the protocol level: a real IscsiServer in this process and
 * the scriptable TestInitiator (test/support/chap-login.ts drives the CHAP exchange).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EffectiveConfig, IscsiSettings, TargetDefinition } from '../../src/config/types.js';
import { IscsiServer } from '../../src/iscsi/server.js';
import { lunDefinition } from '../support/in-process-server.js';
import { chapLogin, type ChapLoginOptions } from '../support/chap-login.js';
import { TestInitiator } from '../support/test-initiator.js';

const T1 = 'iqn.2016-06.org.gluster:t1';
const T2 = 'iqn.2016-06.org.gluster:t2';
const INI_A = 'iqn.1994-05.com.redhat:node-a'; // T1, CHAP + mutual
const INI_B = 'iqn.1994-05.com.redhat:node-b'; // T1, one-way CHAP
const INI_C = 'iqn.1994-05.com.redhat:node-c'; // T2, no CHAP
const INI_RO = 'iqn.1994-05.com.redhat:node-ro'; // T1, CHAP, read-only
const INI_X = 'iqn.1994-05.com.redhat:stranger';
const SECRET_A = 'secret-of-node-a';
const SECRET_B = 'secret-of-node-b';
const SECRET_RO = 'secret-of-node-ro';
const MUTUAL_T1 = 'target-t1-secret';
const DISC = 'discovery-secret';
const ALL_SECRETS = [SECRET_A, SECRET_B, SECRET_RO, MUTUAL_T1, DISC];

const SETTINGS: IscsiSettings = {
  cmdWindow: 128, maxRecvDataSegmentLength: 262144, maxBurstLength: 1048576, firstBurstLength: 262144,
  maxOutstandingR2T: 8, immediateData: true, initialR2T: false, headerDigest: ['None'], dataDigest: ['None'],
  loginTimeout: 15, nopInInterval: 0, nopInTimeout: 10, maxPendingLogins: 64, defaultTime2Wait: 2, defaultTime2Retain: 0,
  authBackoffAfter: 0,
};

function targets(dir: string, secretB = SECRET_B): TargetDefinition[] {
  return [
    {
      iqn: T1,
      luns: [lunDefinition(path.join(dir, 't1.img'), { sizeBytes: 4 * 1024 * 1024 })],
      acl: [
        { initiator: INI_A, readOnly: false, chap: { username: 'user-a', secret: SECRET_A, mutual: { username: 'target-t1', secret: MUTUAL_T1 } } },
        { initiator: INI_B, readOnly: false, chap: { username: 'user-b', secret: secretB } },
        { initiator: INI_RO, readOnly: true, chap: { username: 'user-ro', secret: SECRET_RO } },
      ],
    },
    {
      iqn: T2,
      luns: [lunDefinition(path.join(dir, 't2.img'), { sizeBytes: 4 * 1024 * 1024, serial: 'T2', naa: '6001405abcdef0123456789abcdef0ff' })],
      acl: [{ initiator: INI_C, readOnly: false }],
    },
  ];
}

interface Harness {
  server: IscsiServer;
  port: number;
  dir: string;
  config: EffectiveConfig;
  logs: string[];
  stop(): Promise<void>;
}

async function start(iscsi: Partial<IscsiSettings> = {}, discovery: EffectiveConfig['discovery'] | null = { chap: { username: 'disc', secret: DISC } }): Promise<Harness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'glfs-auth-'));
  const config: EffectiveConfig = {
    portals: [{ host: '127.0.0.1', port: 0, tpgt: 1 }],
    targets: targets(dir),
    iscsi: { ...SETTINGS, ...iscsi },
    dataDir: dir,
    logLevel: 'info',
    controlSocket: path.join(dir, 'control.sock'),
    ...(discovery !== null ? { discovery } : {}),
  };
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logs.push(String(chunk)); cb(); } });
  const server = new IscsiServer(config, pino({ level: 'info' }, sink));
  await server.start();
  return {
    server, port: server.addresses()[0]!.port, dir, config, logs,
    async stop() {
      await server.stop(2000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let h: Harness;
beforeAll(async () => { h = await start(); });
afterAll(async () => { await h?.stop(); });

async function chap(o: ChapLoginOptions, port = h.port): Promise<{ res: Awaited<ReturnType<typeof chapLogin>>; ini: TestInitiator }> {
  const ini = await TestInitiator.connect(port);
  const res = await chapLogin(ini, o);
  return { res, ini };
}

async function chapStatus(o: ChapLoginOptions, port = h.port): Promise<number> {
  const { res, ini } = await chap(o, port);
  ini.close();
  return res.status;
}

const B = { initiatorName: INI_B, targetName: T1, username: 'user-b', secret: SECRET_B };
const A = { initiatorName: INI_A, targetName: T1, username: 'user-a', secret: SECRET_A };

describe('one-way CHAP', () => {
  it('logs in with the right credentials and reaches full feature phase', async () => {
    const { res, ini } = await chap(B);
    expect(res).toMatchObject({ status: 0, step: 'operational', authMethod: 'CHAP', algorithm: '5' });
    expect(res.challenge!.length).toBe(16);
    await ini.clearUnitAttentions();
    expect((await ini.read10(0, 1)).length).toBe(512);
    ini.close();
  });

  it.each([
    ['5', '5', 16], ['6', '6', 20], ['7', '7', 32], ['8', '8', 32], ['5,6,7,8', '8', 32], ['7,5', '7', 32], ['5,7', '7', 32], ['6,5,99', '6', 20],
  ])('CHAP_A=%s → the target picks %s (challenge %i bytes)', async (offered, picked, len) => {
    const { res, ini } = await chap({ ...B, algorithms: offered });
    ini.close();
    expect(res).toMatchObject({ status: 0, algorithm: picked });
    expect(res.challenge!.length).toBe(len);
  });

  it('accepts a base64 (0b) response', async () => {
    expect(await chapStatus({ ...B, algorithms: '7', encoding: 'base64' })).toBe(0);
  });

  it('sends a fresh identifier and challenge on every login', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const { res, ini } = await chap({ ...B, securityOnly: true });
      ini.close();
      seen.add(`${res.identifier}:${res.challenge!.toString('hex')}`);
    }
    expect(seen.size).toBe(5);
  });

  it.each([
    ['a wrong user name', { ...B, username: 'user-x' }],
    ['a wrong secret', { ...B, secret: 'not-the-right-secret' }],
    ['another initiator\'s secret', { ...B, secret: SECRET_A }],
    ['another initiator\'s user name and secret', { ...B, username: 'user-a', secret: SECRET_A }],
    ['the discovery credentials', { ...B, username: 'disc', secret: DISC }],
  ])('refuses %s with 0x0201 after the response', async (_what, o) => {
    const { res, ini } = await chap(o);
    ini.close();
    expect(res).toMatchObject({ status: 0x0201, step: 'response' });
  });

  it('refuses CHAP_A without a supported algorithm (0x0201)', async () => {
    const { res, ini } = await chap({ ...B, algorithms: '4,9' });
    ini.close();
    expect(res).toMatchObject({ status: 0x0201, step: 'challenge' });
  });

  it('refuses an initiator without CHAP: AuthMethod=None, or skipping the security stage (0x0201)', async () => {
    const ini = await TestInitiator.connect(h.port);
    expect((await ini.login({ initiatorName: INI_B, targetName: T1 })).status).toBe(0x0201);
    ini.close();
    const skip = await TestInitiator.connect(h.port);
    const r = await skip.loginStep(Buffer.from([0x80, 0, 0, 0, 0, 3]), 0, 1, 3, true, [
      ['InitiatorName', INI_B], ['TargetName', T1], ['HeaderDigest', 'None'],
    ]);
    skip.close();
    expect(r.status).toBe(0x0201);
  });

  it('refuses CHAP keys out of order and repeated keys', async () => {
    const isid = Buffer.from([0x80, 0, 0, 0, 0, 4]);
    // Response before any challenge.
    let ini = await TestInitiator.connect(h.port);
    let r = await ini.loginStep(isid, 0, 0, 1, true, [['InitiatorName', INI_B], ['TargetName', T1], ['AuthMethod', 'CHAP'], ['CHAP_N', 'user-b'], ['CHAP_R', '0x00']]);
    ini.close();
    expect(r.status).toBe(0x0201);
    // CHAP_A missing in the step after AuthMethod=CHAP.
    ini = await TestInitiator.connect(h.port);
    r = await ini.loginStep(isid, 0, 0, 1, true, [['InitiatorName', INI_B], ['TargetName', T1], ['AuthMethod', 'CHAP']]);
    expect(r).toMatchObject({ status: 0 });
    expect(r.keys.get('AuthMethod')).toBe('CHAP');
    r = await ini.loginStep(isid, 0, 0, 1, true, [['CHAP_N', 'user-b']]);
    ini.close();
    expect(r.status).toBe(0x0201);
    // A key twice in one request.
    ini = await TestInitiator.connect(h.port);
    r = await ini.loginStep(isid, 0, 0, 1, true, [['InitiatorName', INI_B], ['TargetName', T1], ['AuthMethod', 'CHAP'], ['AuthMethod', 'None']]);
    ini.close();
    expect(r.status).toBe(0x0200);
    // CHAP_A together with the response.
    expect(await chapStatus({ ...B, responseExtra: [['CHAP_A', '5']] })).toBe(0x0201);
  });

  it('answers AuthMethod=CHAP,None with None where no CHAP is configured, refuses CHAP-only (0x0201)', async () => {
    const { res, ini } = await chap({ initiatorName: INI_C, targetName: T2, username: 'x', secret: 'y' });
    ini.close();
    expect(res).toMatchObject({ status: 0, authMethod: 'None' });
    expect(await chapStatus({ initiatorName: INI_C, targetName: T2, authMethod: 'CHAP' })).toBe(0x0201);
  });
});

describe('mutual CHAP', () => {
  it('authenticates the target with the mutual credentials', async () => {
    const { res, ini } = await chap({ ...A, mutual: { username: 'target-t1', secret: MUTUAL_T1 } });
    ini.close();
    expect(res).toMatchObject({ status: 0, step: 'operational', targetAuthenticated: true });
    expect(res.responseKeys!.get('CHAP_N')).toBe('target-t1');
  });

  it('works with SHA3-256 and base64 challenges', async () => {
    const { res, ini } = await chap({ ...A, algorithms: '8', encoding: 'base64', mutual: { username: 'target-t1', secret: MUTUAL_T1, id: 0 } });
    ini.close();
    expect(res).toMatchObject({ status: 0, algorithm: '8', targetAuthenticated: true });
  });

  it('an initiator expecting another target secret sees a response that does not check out', async () => {
    const { res, ini } = await chap({ ...A, mutual: { username: 'target-t1', secret: 'what-the-initiator-expects' }, securityOnly: true });
    ini.close();
    expect(res).toMatchObject({ status: 0, targetAuthenticated: false });
  });

  it('refuses a reflected challenge (0x0201)', async () => {
    const { res, ini } = await chap({ ...A, mutual: { username: 'target-t1', secret: MUTUAL_T1, challenge: 'reflect' } });
    ini.close();
    expect(res).toMatchObject({ status: 0x0201, step: 'response' });
  });

  it('refuses mutual CHAP for an entry without mutual credentials (0x0201)', async () => {
    expect(await chapStatus({ ...B, mutual: { username: 'target-t1', secret: MUTUAL_T1 } })).toBe(0x0201);
  });

  it('does not answer the mutual challenge when the initiator\'s own response is wrong', async () => {
    const { res, ini } = await chap({ ...A, secret: 'wrong-wrong-wrong', mutual: { username: 'target-t1', secret: MUTUAL_T1 } });
    ini.close();
    expect(res.status).toBe(0x0201);
    expect(res.responseKeys!.size).toBe(0);
  });
});

describe('ACL decisions and login status codes', () => {
  const first = async (pairs: Array<[string, string]>, tsih = 0): Promise<number> => {
    const ini = await TestInitiator.connect(h.port);
    const r = await ini.loginStep(Buffer.from([0x80, 0, 0, 0, 0, 5]), tsih, 0, 1, true, pairs);
    ini.close();
    return r.status;
  };
  it('unknown initiator → 0x0202; initiator of another target\'s ACL → 0x0202', async () => {
    expect(await chapStatus({ ...B, initiatorName: INI_X })).toBe(0x0202);
    expect(await chapStatus({ ...B, initiatorName: INI_C })).toBe(0x0202);
    expect(await first([['InitiatorName', INI_A], ['TargetName', T2], ['AuthMethod', 'None']])).toBe(0x0202);
  });
  it('unknown target → 0x0203; missing names → 0x0207; unknown session → 0x020a', async () => {
    expect(await first([['InitiatorName', INI_B], ['TargetName', 'iqn.2016-06.org.gluster:none'], ['AuthMethod', 'CHAP']])).toBe(0x0203);
    expect(await first([['TargetName', T1], ['AuthMethod', 'CHAP']])).toBe(0x0207);
    expect(await first([['InitiatorName', INI_B], ['AuthMethod', 'CHAP']])).toBe(0x0207);
    expect(await first([['InitiatorName', INI_B], ['TargetName', T1], ['AuthMethod', 'CHAP']], 0x4242)).toBe(0x020a);
  });
  it('the IQN matches case-insensitively', async () => {
    expect(await chapStatus({ ...B, initiatorName: INI_B.toUpperCase() })).toBe(0);
  });

  it('read-only ACL entry: writes get DATA PROTECT / WRITE PROTECTED, reads work, MODE SENSE shows WP', async () => {
    const { res, ini } = await chap({ initiatorName: INI_RO, targetName: T1, username: 'user-ro', secret: SECRET_RO });
    expect(res.status).toBe(0);
    await ini.clearUnitAttentions();
    expect((await ini.read10(8, 1)).length).toBe(512);
    const w = await ini.write10(8, Buffer.alloc(512, 0xab));
    expect(w.status).toBe(0x02);
    expect(w.sense![2]! & 0x0f).toBe(0x07); // DATA PROTECT
    expect(w.sense![12]).toBe(0x27); // WRITE PROTECTED
    // MODE SENSE(6), all pages: device-specific parameter bit 7 = WP.
    const itt = ini.itt;
    await ini.sendPdu(ini.commandHeader(Buffer.from([0x1a, 0, 0x3f, 0, 255, 0]), { read: true, edtl: 255 }));
    const ms = await ini.collect(itt);
    expect(ms.status).toBe(0);
    expect(ms.data[2]! & 0x80).toBe(0x80);
    ini.close();
  });
});

describe('discovery', () => {
  const targetsSeen = async (ini: TestInitiator) => (await ini.text([['SendTargets', 'All']])).filter(([k]) => k === 'TargetName').map(([, v]) => v);

  it('requires discovery CHAP when discovery.chap is set', async () => {
    const ini = await TestInitiator.connect(h.port);
    expect((await ini.login({ sessionType: 'Discovery', initiatorName: INI_C })).status).toBe(0x0201);
    ini.close();
    expect(await chapStatus({ sessionType: 'Discovery', initiatorName: INI_C, username: 'disc', secret: 'wrong-discovery-secret' })).toBe(0x0201);
    expect(await chapStatus({ sessionType: 'Discovery', initiatorName: INI_B, username: 'user-b', secret: SECRET_B })).toBe(0x0201);
  });

  it('SendTargets lists exactly the targets the initiator may log into', async () => {
    for (const [name, expected] of [[INI_A, [T1]], [INI_C, [T2]], [INI_X, []]] as const) {
      const { res, ini } = await chap({ sessionType: 'Discovery', initiatorName: name, username: 'disc', secret: DISC });
      expect(res.status).toBe(0);
      expect(await targetsSeen(ini)).toEqual(expected);
      ini.close();
    }
  });

  it('is open without discovery.chap', async () => {
    const open = await start({}, null);
    try {
      const ini = await TestInitiator.connect(open.port);
      expect((await ini.login({ sessionType: 'Discovery', initiatorName: INI_C })).status).toBe(0);
      expect(await targetsSeen(ini)).toEqual([T2]);
      ini.close();
    } finally {
      await open.stop();
    }
  });
});

describe('refusal logging', () => {
  it('logs each refusal once with initiator and address, never a secret, challenge or response', async () => {
    const before = h.logs.length;
    const { res, ini } = await chap({ ...B, secret: 'guess-number-one' });
    ini.close();
    expect(res.status).toBe(0x0201);
    await new Promise((r) => setTimeout(r, 50));
    const lines = h.logs.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    const refused = lines.filter((l) => l.msg === 'login refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ initiator: INI_B, target: T1, status: '0x0201', why: 'wrong CHAP response (MD5)' });
    expect(String(refused[0]!.remote)).toMatch(/^127\.0\.0\.1:\d+$/);
    const all = h.logs.join('');
    for (const s of [...ALL_SECRETS, 'guess-number-one']) expect(all).not.toContain(s);
    expect(all).not.toContain(res.challenge!.toString('hex'));
    expect(all).not.toMatch(/CHAP_[RCNI]=/);
  });
});

describe('reload', () => {
  it('applies new ACL secrets to new logins, keeps established sessions, rejects a bad file', async () => {
    const r = await start();
    try {
      const { res, ini: established } = await chap(B, r.port);
      expect(res.status).toBe(0);
      await established.clearUnitAttentions();

      const next: EffectiveConfig = { ...r.config, targets: targets(r.dir, 'rotated-secret-b'), discovery: undefined as never };
      delete (next as { discovery?: unknown }).discovery;
      expect(await r.server.reload(next)).toEqual({ changed: [], needRestart: [] });
      expect((await established.read10(0, 1)).length).toBe(512); // still works
      expect(await chapStatus(B, r.port)).toBe(0x0201);
      expect(await chapStatus({ ...B, secret: 'rotated-secret-b' }, r.port)).toBe(0);
      // Discovery CHAP removed: discovery is open now.
      const disc = await TestInitiator.connect(r.port);
      expect((await disc.login({ sessionType: 'Discovery', initiatorName: INI_C })).status).toBe(0);
      disc.close();

      // A weak secret: refused, nothing changes.
      await expect(r.server.reload({ ...r.config, targets: targets(r.dir, 'short') })).rejects.toThrow(/targets\[0\]\.acl\[1\]\.chap\.secret: the secret is 5 bytes long/);
      expect(await chapStatus({ ...B, secret: 'rotated-secret-b' }, r.port)).toBe(0);
      expect(await chapStatus({ ...B, secret: 'short' }, r.port)).toBe(0x0201);

      // A target removed from the file is closed: a login to it finds no such target (RFC 7143 §11.13.5, 0203h).
      expect(await r.server.reload({ ...r.config, targets: targets(r.dir).slice(0, 1) })).toEqual({ changed: [`removed target ${T2}`], needRestart: [] });
      const c = await TestInitiator.connect(r.port);
      expect((await c.login({ initiatorName: INI_C, targetName: T2 })).status).toBe(0x0203);
      c.close();
      established.close();
    } finally {
      await r.stop();
    }
  });
});

describe('hardening', () => {
  it('never refuses or delays a correct CHAP login: ACL refusals and other initiators\' failures from the address do not count', async () => {
    const r = await start({ authBackoffAfter: 2, authBackoffInitial: 2, authBackoffMax: 2 });
    try {
      // One misconfigured volume on the node: not in the ACL, five times; another initiator with a wrong secret.
      for (let i = 0; i < 5; i++) expect(await chapStatus({ initiatorName: INI_X, targetName: T1, username: 'x', secret: 'xxxxxxxxxxxx' }, r.port)).toBe(0x0202);
      for (let i = 0; i < 2; i++) expect(await chapStatus({ ...A, secret: `guess-${i}-guess-${i}` }, r.port)).toBe(0x0201);
      const t0 = Date.now();
      expect(await chapStatus(B, r.port)).toBe(0);
      expect(Date.now() - t0).toBeLessThan(1500); // no delay (a delay here would be 2 s)
      // Even the initiator whose own guesses failed gets in at once with the right secret.
      for (let i = 0; i < 3; i++) expect(await chapStatus({ ...B, secret: `guess-${i}-guess-${i}` }, r.port)).toBe(0x0201);
      const t1 = Date.now();
      expect(await chapStatus(B, r.port)).toBe(0);
      expect(Date.now() - t1).toBeLessThan(1500);
      expect(r.logs.some((l) => l.includes('0x0301'))).toBe(false);
    } finally {
      await r.stop();
    }
  });

  it('answers wrong CHAP responses after a delay growing per initiator name and address, bounded and logged', async () => {
    const r = await start({ authBackoffAfter: 2, authBackoffInitial: 0.3 as number, authBackoffMax: 0.6 as number });
    try {
      const timed = async (o: ChapLoginOptions): Promise<{ status: number; ms: number }> => {
        const { res, ini } = await chap({ ...o, securityOnly: true }, r.port);
        ini.close();
        return { status: res.status, ms: res.refusedAfterMs ?? 0 };
      };
      const first = await timed({ ...B, secret: 'guess-1-guess-1' }); // 1st failure: no delay yet
      const second = await timed({ ...B, secret: 'guess-2-guess-2' }); // 2nd: 0.3 s
      const third = await timed({ ...B, secret: 'guess-3-guess-3' }); // 3rd: 0.6 s
      const fourth = await timed({ ...B, secret: 'guess-4-guess-4' }); // capped at 0.6 s
      expect([first.status, second.status, third.status, fourth.status]).toEqual([0x0201, 0x0201, 0x0201, 0x0201]);
      expect(second.ms).toBeGreaterThanOrEqual(280);
      expect(third.ms).toBeGreaterThanOrEqual(580);
      expect(fourth.ms).toBeGreaterThanOrEqual(580);
      // Another initiator name from the same address starts with no delay.
      const other = await timed({ ...A, secret: 'guess-a-guess-a' });
      expect(other.status).toBe(0x0201);
      expect(other.ms).toBeLessThan(280);
      const refused = r.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'login refused' && l.status === '0x0201');
      expect(String(refused[2]!.why)).toMatch(/3 failed CHAP responses from this initiator and address; answered after 0\.6 s$/);
    } finally {
      await r.stop();
    }
  });

  it('caps the connections in login per source address', async () => {
    const r = await start({ maxPendingLoginsPerAddress: 3 });
    try {
      const idle = await Promise.all([1, 2, 3].map(() => TestInitiator.connect(r.port)));
      const fourth = await TestInitiator.connect(r.port);
      expect(await fourth.waitClosed(2000)).toBe(true);
      expect(idle.some((c) => c.closed)).toBe(false);
      // Logged-in connections do not count.
      expect((await chapLogin(idle[0]!, B)).status).toBe(0);
      const fifth = await TestInitiator.connect(r.port);
      expect((await chapLogin(fifth, { ...B, isid: Buffer.from([0x80, 0, 0, 0, 0, 9]) })).status).toBe(0);
      idle[1]!.close();
      await new Promise((res) => setTimeout(res, 50));
      const sixth = await TestInitiator.connect(r.port);
      expect((await chapLogin(sixth, { ...B, isid: Buffer.from([0x80, 0, 0, 0, 0, 10]) })).status).toBe(0);
      for (const c of [...idle, fifth, sixth]) c.close();
      expect(r.logs.some((l) => l.includes('too many connections in login from this address'))).toBe(true);
    } finally {
      await r.stop();
    }
  });

  it('a CHAP entry whose secret was never loaded refuses logins (fail closed)', async () => {
    // reload() reads secrets before switching, so this state is only reachable by bypassing it.
    const r = await start();
    try {
      const t = r.server.findTarget(T1)!;
      t.definition = { ...t.definition, acl: t.definition.acl.map((e) => (e.chap ? { ...e, chap: { ...e.chap } } : e)) };
      expect(await chapStatus(B, r.port)).toBe(0x0300);
    } finally {
      await r.stop();
    }
  });
});
