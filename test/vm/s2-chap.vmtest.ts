/**
 * Scenario 2: CHAP and mutual CHAP logins by the kernel initiator; a wrong secret is refused
 * (iscsiadm's authorization failure, exit 24); a wrong TARGET secret makes the initiator refuse
 * the target; and kubelet's flow with chapSession (node -o update of node.session.auth.*).
 *
 * Switch: runs when acl[].chap works, found out by a quick probe with libiscsi on the host (a
 * right secret logs in, a wrong one does not). GLFS_VM_CHAP=1 forces it on (fails if CHAP is
 * broken), GLFS_VM_CHAP=0 off.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, run, startGlfsTarget, which, type TargetHandle } from '../e2e/harness.js';
import { Vm, describeStep, portalIp, recordTiming, vmPrereqs } from './vm.js';
import { byPath, kubeletAttach, kubeletDetach, startIscsid, waitDevice } from './scenarios.js';

const IQN = 'iqn.2016-06.org.gluster:vm-chap';
const ONE_WAY = { initiator: 'iqn.2007-10.com.example:chap-oneway', username: 'oneway-user', secret: 'oneway-secret-123' };
const MUTUAL = {
  initiator: 'iqn.2007-10.com.example:chap-mutual', username: 'mutual-user', secret: 'mutual-secret-1234',
  target: { username: 'target-user', secret: 'target-secret-5678' },
};
const ACL = [
  { initiator: ONE_WAY.initiator, chap: { username: ONE_WAY.username, secret: ONE_WAY.secret } },
  { initiator: MUTUAL.initiator, chap: { username: MUTUAL.username, secret: MUTUAL.secret, mutual: MUTUAL.target } },
];

/** Does acl[].chap work in the built server? (right secret: login; wrong secret: refused) */
async function probeChap(): Promise<string> {
  const inq = which('iscsi-inq');
  if (!inq) return "probe needs 'iscsi-inq' (libiscsi-bin)";
  let t: TargetHandle;
  try {
    t = await startGlfsTarget({ iqn: IQN, luns: [{ size: '16M' }], acl: ACL.slice(0, 1) });
  } catch (e) {
    return `the server does not start with acl[].chap: ${(e as Error).message.split('\n')[0]}`;
  }
  try {
    const url = (secret: string) => `iscsi://${ONE_WAY.username}%${secret}@${t.portal}/${IQN}/0`;
    const good = await run(inq, ['-i', ONE_WAY.initiator, url(ONE_WAY.secret)], { timeout: 20_000 });
    const bad = await run(inq, ['-i', ONE_WAY.initiator, url('wrong-secret-0000')], { timeout: 20_000 });
    if (good.code !== 0) return `CHAP login with the right secret fails (${good.stderr.trim().split('\n')[0]})`;
    if (bad.code === 0) return 'CHAP login with a WRONG secret succeeds';
    return '';
  } finally {
    await t.stop();
  }
}

const switchEnv = process.env.GLFS_VM_CHAP;
const chapWhy = switchEnv === '0' ? 'GLFS_VM_CHAP=0' : switchEnv === '1' ? '' : await probeChap();
if (chapWhy) console.warn(`[vm] scenario 2 (CHAP) switched off: ${chapWhy}`);
const pre = vmPrereqs();

describe.skipIf(pre.skip || chapWhy !== '')('scenario 2: CHAP and mutual CHAP with the kernel initiator', () => {
  let t: TargetHandle;
  let vm: Vm;
  let portal = '';
  const t0 = Date.now();

  beforeAll(async () => {
    pre.assert();
    const port = await freePort();
    portal = `${portalIp(0)}:${port}`;
    t = await startGlfsTarget({ iqn: IQN, portals: [{ address: `127.0.0.1:${port}`, advertise: portal }], luns: [{ size: '512M' }], acl: ACL });
    vm = await Vm.boot({ name: 's2', portals: [{ port }] });
    await startIscsid(vm, 'iqn.2007-10.com.example:node-default');
  });

  afterAll(async () => {
    recordTiming('scenario-2', Date.now() - t0, { bootMs: vm?.bootMs, accel: vm?.accel });
    await vm?.stop();
    await t?.stop();
  });

  /** An iface with its own initiator name, a node record with the given auth settings, then --login. */
  async function tryLogin(ifaceName: string, initiator: string, auth: Record<string, string>) {
    const node = `iscsiadm -m node -T ${IQN} -p ${portal} -I ${ifaceName}`;
    const setup = [
      `iscsiadm -m iface -I ${ifaceName} -o new >/dev/null 2>&1 || true`,
      `iscsiadm -m iface -I ${ifaceName} -o update -n iface.initiatorname -v ${initiator} >/dev/null`,
      `iscsiadm -m iface -I ${ifaceName} -o update -n iface.transport_name -v tcp >/dev/null`,
      `${node} -o new >/dev/null`,
      ...Object.entries(auth).map(([k, v]) => `${node} -o update -n ${k} -v '${v}'`),
    ].join(' && ');
    const s = await vm.sh(setup);
    expect(s.code, describeStep('node setup', s)).toBe(0);
    const r = await vm.sh(`${node} --login`, { timeoutS: 120 });
    const cleanup = async () => {
      await vm.sh(`${node} --logout >/dev/null 2>&1; ${node} -o delete >/dev/null 2>&1; true`, { timeoutS: 60 });
    };
    return { r, cleanup };
  }

  test('one-way CHAP: login succeeds and the disk appears', async () => {
    const { r, cleanup } = await tryLogin('chap1', ONE_WAY.initiator, {
      'node.session.auth.authmethod': 'CHAP', 'node.session.auth.username': ONE_WAY.username, 'node.session.auth.password': ONE_WAY.secret,
    });
    expect(r.code, describeStep('CHAP login', r)).toBe(0);
    expect(r.out).toContain('successful');
    await waitDevice(vm, byPath(portal, IQN), 512 * 1024 * 1024);
    await cleanup();
  });

  test('a wrong secret is refused: authorization failure (exit 24)', async () => {
    const { r, cleanup } = await tryLogin('chap2', ONE_WAY.initiator, {
      'node.session.auth.authmethod': 'CHAP', 'node.session.auth.username': ONE_WAY.username, 'node.session.auth.password': 'not-the-secret-0',
    });
    expect(r.code, describeStep('wrong secret', r)).toBe(24);
    expect(r.err).toMatch(/authorization failure/i);
    await cleanup();
  });

  test('no credentials at all for a CHAP-only initiator: refused', async () => {
    const { r, cleanup } = await tryLogin('chap3', ONE_WAY.initiator, { 'node.session.auth.authmethod': 'None' });
    expect(r.code, describeStep('no CHAP', r)).not.toBe(0);
    await cleanup();
  });

  test('mutual CHAP: login succeeds; a wrong target secret makes the initiator refuse the target', async () => {
    const auth = {
      'node.session.auth.authmethod': 'CHAP', 'node.session.auth.username': MUTUAL.username, 'node.session.auth.password': MUTUAL.secret,
      'node.session.auth.username_in': MUTUAL.target.username, 'node.session.auth.password_in': MUTUAL.target.secret,
    };
    const good = await tryLogin('chapm', MUTUAL.initiator, auth);
    expect(good.r.code, describeStep('mutual CHAP login', good.r)).toBe(0);
    await good.cleanup();
    const bad = await tryLogin('chapm2', MUTUAL.initiator, { ...auth, 'node.session.auth.password_in': 'not-the-target-1' });
    expect(bad.r.code, describeStep('mutual CHAP with a wrong target secret', bad.r)).not.toBe(0);
    await bad.cleanup();
  });

  test("kubelet's flow with chapSession (node -o update of node.session.auth.*)", async () => {
    const v = {
      name: 'pv-chap', portal, iqn: IQN, lun: 0, fsType: 'xfs', readOnly: false, initiatorName: MUTUAL.initiator,
      chapSession: {
        'node.session.auth.username': MUTUAL.username, 'node.session.auth.password': MUTUAL.secret,
        'node.session.auth.username_in': MUTUAL.target.username, 'node.session.auth.password_in': MUTUAL.target.secret,
      },
    };
    const a = await kubeletAttach(vm, v);
    expect(a.transcript.some((s) => s.cmd.includes('-o update -n node.session.auth.authmethod -v CHAP'))).toBe(true);
    await kubeletDetach(vm, v, a);
  });
});
