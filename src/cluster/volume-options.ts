import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * Gluster volume options that serving one LUN file from several nodes relies on
 * (docs/high-availability.md):
 * - `client.strict-locks on`: a client that lost its connection does not reopen, without its
 *   lock, the file descriptor that held it — so a former owner cut off from the bricks cannot
 *   write once another node owns the file (the fence).
 * - The client caches off (the gluster-block profile): a node must not read file data or the
 *   other nodes' state files from its own stale cache.
 */
export const REQUIRED_VOLUME_OPTIONS: ReadonlyArray<readonly [string, string]> = [
  ['client.strict-locks', 'on'],
  ['performance.quick-read', 'off'],
  ['performance.io-cache', 'off'],
  ['performance.read-ahead', 'off'],
  ['performance.stat-prefetch', 'off'],
  ['performance.open-behind', 'off'],
];

/** The gluster volume (server:/name) a path is on, from /proc/mounts; undefined when not on a gluster FUSE mount. */
export async function glusterVolumeOf(path: string): Promise<{ mount: string; volume: string } | undefined> {
  const mounts = await readFile('/proc/mounts', 'utf8').catch(() => '');
  const abs = resolve(path);
  let best: { mount: string; volume: string } | undefined;
  for (const line of mounts.split('\n')) {
    const [source, target, type] = line.split(' ');
    if (type !== 'fuse.glusterfs' || source === undefined || target === undefined) continue;
    const mount = target.replace(/\\040/g, ' ');
    if ((abs === mount || abs.startsWith(mount.endsWith('/') ? mount : `${mount}/`)) && (best === undefined || mount.length > best.mount.length)) {
      best = { mount, volume: source.replace(/^[^:]*:\/?/, '') };
    }
  }
  return best;
}

function glusterGet(volume: string, option: string): Promise<string | undefined> {
  return new Promise((done) => {
    execFile('gluster', ['--mode=script', 'volume', 'get', volume, option], { timeout: 10_000 }, (err, stdout) => {
      if (err) return done(undefined);
      const m = new RegExp(`^${option.replace(/\./g, '\\.')}\\s+(\\S+)`, 'm').exec(stdout);
      done(m?.[1]);
    });
  });
}

/**
 * Warnings for the LUN files on gluster volumes that lack the options above, one line each; a
 * volume whose options cannot be read here (no gluster CLI, not a server node) gets one line
 * saying what to check.
 */
export async function volumeOptionWarnings(lunPaths: readonly string[]): Promise<string[]> {
  const volumes = new Set<string>();
  for (const p of lunPaths) {
    const v = await glusterVolumeOf(p);
    if (v !== undefined) volumes.add(v.volume);
  }
  const out: string[] = [];
  for (const volume of volumes) {
    for (const [option, wanted] of REQUIRED_VOLUME_OPTIONS) {
      const value = await glusterGet(volume, option);
      if (value === undefined) {
        out.push(`gluster volume ${volume}: cannot read its options here; multi-node serving relies on ${REQUIRED_VOLUME_OPTIONS.map(([o, w]) => `${o}=${w}`).join(', ')} (see docs/high-availability.md)`);
        break;
      }
      if (value !== wanted) out.push(`gluster volume ${volume}: ${option} is ${value}; multi-node serving needs ${wanted} (gluster volume set ${volume} ${option} ${wanted})`);
    }
  }
  return out;
}
