import fs from 'node:fs';
import { constants } from 'node:os';

/** The volume has no room (SBC-3 §4.7.3.7: the initiator hears DATA PROTECT 27h/07h). */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * `err`, or ENOSPC when the file system at `path` has no room for `bytes` and `err` is what a
 * full gluster replica volume answers instead: EIO (a direct write), or ENOTCONN when the bricks
 * fill unevenly and the write lands on fewer than a quorum of them (AFR fails the write with
 * ENOTCONN then). statfs answering is what tells it from a client that lost its bricks, which
 * stays ENOTCONN.
 */
export async function asOutOfSpace(path: string, err: NodeJS.ErrnoException, bytes: number): Promise<NodeJS.ErrnoException> {
  if (err.code !== 'EIO' && err.code !== 'ENOTCONN') return err;
  const st = await fs.promises.statfs(path).catch(() => undefined);
  if (st === undefined || st.bavail * st.bsize >= Math.max(bytes, st.bsize)) return err;
  return Object.assign(new Error(`${path}: write failed with no space left on the volume (${err.message})`, { cause: err }), { code: 'ENOSPC', errno: -constants.errno.ENOSPC });
}
