// Issue 11 #13: an unmounted gluster volume must never become a blank disk. A LUN file is created
// only when its configuration asks for it, a LUN bound to a gluster volume is served only from
// a mount of that volume, and a path under an fstab gluster mount point that is not mounted is
// refused — and a refused start leaves nothing behind on the local disk.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertOnItsVolume, glusterFstabEntries } from '../../src/cluster/volume-options.js';
import { IscsiServer } from '../../src/iscsi/server.js';
import { parseConfig } from '../../src/config/load.js';

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glfs-volume-')); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function config(lun: Record<string, unknown>) {
  const c = parseConfig({
    portals: ['127.0.0.1:3260'],
    targets: [{ iqn: 'iqn.2016-06.org.gluster:vol', luns: [{ lun: 0, path: 'app-store.img', size: '16M', ...lun }], acl: [{ initiator: '*' }] }],
  }, dir);
  c.portals[0]!.port = 0; // any free port
  return c;
}

describe('never a blank disk in place of a missing one', () => {
  it('a missing LUN file is refused unless the configuration says create, and nothing is left behind', async () => {
    const server = new IscsiServer(config({}), pino({ level: 'silent' }));
    await expect(server.start()).rejects.toThrow(/does not exist; set "create": true/);
    expect(fs.readdirSync(dir)).toEqual([]);
    const creating = new IscsiServer(config({ create: true }), pino({ level: 'silent' }));
    await creating.start();
    try {
      expect(fs.statSync(path.join(dir, 'app-store.img')).size).toBe(16 * 1024 * 1024);
    } finally {
      await creating.stop();
    }
  });

  it('a LUN bound to a gluster volume is refused when that volume is not what is mounted there', async () => {
    fs.writeFileSync(path.join(dir, 'app-store.img'), Buffer.alloc(1 << 20));
    await expect(assertOnItsVolume(path.join(dir, 'app-store.img'), 'gv0')).rejects.toThrow(/must be on gluster volume gv0, but no gluster volume is mounted there/);
    const server = new IscsiServer(config({ volume: 'gv0', create: true }), pino({ level: 'silent' }));
    await expect(server.start()).rejects.toThrow(/must be on gluster volume gv0/);
    expect(fs.readdirSync(dir)).toEqual(['app-store.img']);
  });

  it('a path under a mount point that /etc/fstab mounts from gluster is refused while nothing is mounted there', async () => {
    const fstab = `# static file system information\n/dev/vda1 / ext4 defaults 0 1\nnode1:/gv0 ${dir} glusterfs defaults,_netdev 0 0\n`;
    expect(glusterFstabEntries(fstab)).toEqual([{ mount: dir, volume: 'gv0' }]);
    await expect(assertOnItsVolume(path.join(dir, 'app-store.img'), undefined, fstab)).rejects.toThrow(/which \/etc\/fstab mounts from gluster volume gv0, but that volume is not mounted/);
    await expect(assertOnItsVolume(path.join(os.tmpdir(), 'elsewhere.img'), undefined, fstab)).resolves.toBeUndefined();
  });
});
