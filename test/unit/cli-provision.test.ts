import { open as openFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliIo } from '../../src/cli.js';
import { flock } from '../../src/backend/atomic-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'glfs-provision-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function harness(overrides: Partial<CliIo> = {}) {
  const out = { stdout: '', stderr: '' };
  const io: Partial<CliIo> = {
    stdout: (t) => void (out.stdout += t),
    stderr: (t) => void (out.stderr += t),
    env: {},
    cwd: dir,
    stderrIsTerminal: false,
    ...overrides,
  };
  return { io, out };
}

/** Blocks of the file actually allocated (st_blocks is in 512-byte units). */
async function allocatedBytes(file: string): Promise<number> {
  return (await stat(file)).blocks * 512;
}

describe('create', () => {
  it('makes a sparse file of the size asked, and says so as JSON', async () => {
    const { io, out } = harness();
    expect(await runCli(['create', 'sparse.img', '--size', '64M', '--json'], io)).toBe(0);
    const result = JSON.parse(out.stdout) as Record<string, unknown>;
    expect(result).toMatchObject({ result: 'SUCCESS', path: path.join(dir, 'sparse.img'), sizeBytes: 64 * 2 ** 20, size: '64 MiB', preallocated: false });
    expect((await stat(path.join(dir, 'sparse.img'))).size).toBe(64 * 2 ** 20);
    expect(await allocatedBytes(path.join(dir, 'sparse.img'))).toBeLessThan(2 ** 20);
  });

  it('--preallocate writes every byte and reports progress on stderr', async () => {
    const { io, out } = harness();
    expect(await runCli(['create', 'thick.img', '--size', '16M', '--preallocate'], io)).toBe(0);
    expect(out.stdout).toBe(`created ${path.join(dir, 'thick.img')}: 16 MiB (16777216 bytes), preallocated\n`);
    expect(await allocatedBytes(path.join(dir, 'thick.img'))).toBeGreaterThanOrEqual(16 * 2 ** 20);
    const lines = out.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^preallocating: [0-9]+ MiB of 16 MiB \(25%\)$/);
    expect(lines.at(-1)).toBe('preallocating: 16 MiB of 16 MiB (100%)');
  });

  it('never overwrites a file, and refuses a size that is no whole 4 KiB', async () => {
    await writeFile(path.join(dir, 'taken.img'), 'data');
    const a = harness();
    expect(await runCli(['create', 'taken.img', '--size', '1G', '--json'], a.io)).toBe(1);
    expect(JSON.parse(a.out.stdout)).toMatchObject({ result: 'FAIL' });
    expect(a.out.stderr).toMatch(/exists already: create never overwrites a LUN file/);
    expect((await stat(path.join(dir, 'taken.img'))).size).toBe(4);
    const b = harness();
    expect(await runCli(['create', 'odd.img', '--size', '1000'], b.io)).toBe(2);
    expect(b.out.stderr).toMatch(/not a whole number of 4096-byte blocks/);
    const c = harness();
    expect(await runCli(['create', 'nodir/x.img', '--size', '1M'], c.io)).toBe(1);
    expect(c.out.stderr).toMatch(/no such directory \(is the gluster volume mounted\?\)/);
  });
});

describe('resize', () => {
  it('grows a file, refuses to shrink it, and says so as JSON', async () => {
    const file = path.join(dir, 'grow.img');
    expect(await runCli(['create', file, '--size', '8M'], harness().io)).toBe(0);
    const grow = harness();
    expect(await runCli(['resize', file, '--size', '12M', '--json'], grow.io)).toBe(0);
    expect(JSON.parse(grow.out.stdout)).toMatchObject({ result: 'SUCCESS', sizeBytes: 12 * 2 ** 20, previousSizeBytes: 8 * 2 ** 20 });
    expect((await stat(file)).size).toBe(12 * 2 ** 20);
    const shrink = harness();
    expect(await runCli(['resize', file, '--size', '4M'], shrink.io)).toBe(1);
    expect(shrink.out.stderr).toMatch(/shrinking to 4 MiB is refused \(it would cut off data\)/);
    expect((await stat(file)).size).toBe(12 * 2 ** 20);
  });

  it('refuses a file a server holds locked and says to reload instead', async () => {
    const file = path.join(dir, 'served.img');
    expect(await runCli(['create', file, '--size', '8M'], harness().io)).toBe(0);
    const served = await openFile(file, 'r+');
    try {
      await flock(served.fd, 'exnb');
      const h = harness();
      expect(await runCli(['resize', file, '--size', '16M'], h.io)).toBe(1);
      expect(h.out.stderr).toMatch(/served by a running glfs-target: set its LUN's "size" to 16777216 .* run "glfs-target reload"/);
      expect((await stat(file)).size).toBe(8 * 2 ** 20);
    } finally {
      await served.close();
    }
  });
});

describe('check on this machine', () => {
  const config = (portal: string, lunPath: string) => ({
    portals: [portal],
    targets: [{ iqn: 'iqn.2016-06.org.gluster:check', luns: [{ lun: 0, path: lunPath, size: '1G', create: true }], acl: [{ initiator: '*' }] }],
    controlSocket: 'check-ctl.sock',
  });

  it('reports a LUN directory that does not exist and a portal another program listens on', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const file = path.join(dir, 'check-bad.json');
      await writeFile(file, JSON.stringify(config(`127.0.0.1:${port}`, 'missing-dir/lun0.img')));
      const { io, out } = harness();
      expect(await runCli(['check', '--config', file], io)).toBe(1);
      expect(out.stderr).toContain(`error: LUN 0 (${path.join(dir, 'missing-dir/lun0.img')}): the directory ${path.join(dir, 'missing-dir')} does not exist`);
      expect(out.stderr).toContain(`error: portal 127.0.0.1:${port}: the address is in use`);
    } finally {
      busy.close();
    }
  });

  it('passes a config whose LUN directory exists and whose portal is free', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const file = path.join(dir, 'check-good.json');
    await writeFile(file, JSON.stringify(config(`127.0.0.1:${port}`, 'lun0.img')));
    const { io, out } = harness();
    expect(await runCli(['check', '--config', file], io), out.stderr).toBe(0);
    expect(out.stderr).not.toMatch(/error/);
  });
});
