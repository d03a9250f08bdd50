import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessServer, TEST_TARGET, type RunningServer } from '../support/in-process-server.js';
import { TestInitiator } from '../support/test-initiator.js';

let srv: RunningServer;
beforeAll(async () => {
  srv = await startInProcessServer({
    portals: [
      { host: '127.0.0.1', port: 0, tpgt: 1 },
      { host: '0.0.0.0', port: 0, tpgt: 2 },
      { host: '127.0.0.1', port: 0, tpgt: 3, advertise: '10.0.2.100:3263' },
    ],
  });
});
afterAll(async () => { await srv.stop(); });

describe('TargetAddress in SendTargets (RFC 7143 §13.8, Appendix C)', () => {
  it('lists every portal with its tpgt, the one used first, wildcards as the address reached, advertise for NAT', async () => {
    const [p1, p2] = srv.server.addresses();
    const ini = await TestInitiator.connect(p2!.port);
    expect((await ini.login({ sessionType: 'Discovery' })).status).toBe(0);
    const addresses = (await ini.text([['SendTargets', 'All']])).filter(([k]) => k === 'TargetAddress').map(([, v]) => v);
    expect(addresses).toEqual([`127.0.0.1:${p2!.port},2`, `127.0.0.1:${p1!.port},1`, '10.0.2.100:3263,3']);
    ini.close();
  });

  it('declares the portal group tag of the portal a normal session logged in through', async () => {
    const p3 = srv.server.addresses()[2]!;
    const ini = await TestInitiator.connect(p3.port);
    const res = await ini.login({ targetName: TEST_TARGET });
    expect(res.status).toBe(0);
    expect(res.keys.get('TargetPortalGroupTag')).toBe('3');
    ini.close();
  });
});
