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
 * - `performance.write-behind off`: with it on (and its default flush-behind), a client
 *   acknowledges writes it has not yet sent to the bricks, and a flush returns before they are
 *   sent, so an exiting owner's lock can be released while its acknowledged writes are still on
 *   their way; a killed client loses them altogether.
 */
export const REQUIRED_VOLUME_OPTIONS: ReadonlyArray<readonly [string, string]> = [
  ['client.strict-locks', 'on'],
  ['performance.write-behind', 'off'],
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

/** Mount points /etc/fstab (or `fstabText`) mounts from gluster, with their volumes. */
export function glusterFstabEntries(fstabText: string): Array<{ mount: string; volume: string }> {
  const out: Array<{ mount: string; volume: string }> = [];
  for (const raw of fstabText.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const [source, target, type] = line.split(/\s+/);
    if (source === undefined || target === undefined || type !== 'glusterfs') continue;
    out.push({ mount: target.replace(/\\040/g, ' '), volume: source.replace(/^[^:]*:\/?/, '') });
  }
  return out;
}

/**
 * Refuse to serve a LUN file from anywhere but its gluster volume (an unmounted volume leaves its
 * mount point an empty local directory): with `volume` configured, the file must be on a
 * fuse.glusterfs mount of that volume; without it, a path under a mount point that /etc/fstab
 * mounts from gluster must be on a gluster mount. Throws with the reason.
 */
export async function assertOnItsVolume(path: string, volume: string | undefined, fstabText?: string): Promise<void> {
  const mounted = await glusterVolumeOf(path);
  if (volume !== undefined) {
    if (mounted?.volume === volume) return;
    throw Object.assign(new Error(`${path} must be on gluster volume ${volume}, but ${mounted === undefined ? 'no gluster volume is mounted there' : `it is on volume ${mounted.volume}`}; refusing to serve it from anywhere else`), { code: 'ENOTMOUNTED' });
  }
  if (mounted !== undefined) return;
  const abs = resolve(path);
  const fstab = fstabText ?? (await readFile('/etc/fstab', 'utf8').catch(() => ''));
  const expected = glusterFstabEntries(fstab).find((e) => abs.startsWith(e.mount.endsWith('/') ? e.mount : `${e.mount}/`));
  if (expected !== undefined) {
    throw Object.assign(new Error(`${path} is under ${expected.mount}, which /etc/fstab mounts from gluster volume ${expected.volume}, but that volume is not mounted; refusing to serve it from the local disk`), { code: 'ENOTMOUNTED' });
  }
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
