/**
 * Provisioning LUN files, as gluster-block's create and modify do for its block files:
 *
 *   glfs-target create PATH --size 8G [--preallocate] [--json]
 *   glfs-target resize PATH --size 16G [--json]
 *
 * `create` makes a new file (never an existing one): sparse, or with --preallocate every byte
 * written (zeros, progress on stderr), so a thick LUN cannot run out of space on the volume later.
 * `resize` only grows (a smaller size is refused: it would cut off data). A file a running server
 * serves holds that server's lock: resize refuses it and says to grow it through the server
 * ("size" in its config, then `glfs-target reload`), which also tells the initiators.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { flock, isLockHeld } from './backend/atomic-file.js';
import { formatSize, parseSize } from './config/size.js';

/** Zeros written per call when preallocating. */
const PREALLOCATE_CHUNK = 4 * 1024 * 1024;
/** LUN sizes must be whole 4096-byte blocks: either configured block size (512 or 4096) fits. */
const SIZE_GRANULE = 4096;

export interface ProvisionIo {
  stdout(text: string): void;
  stderr(text: string): void;
  cwd: string;
  /** Whether stderr is a terminal: the progress line is then redrawn in place. */
  stderrIsTerminal: boolean;
}

export interface ProvisionArgs {
  path: string;
  size: string;
  json: boolean;
  preallocate?: boolean;
}

/** yargs options of `create` and `resize`. */
export function provisionOptions(command: 'create' | 'resize') {
  return (y: Argv) => {
    const base = y
      .positional('path', { type: 'string', demandOption: true, describe: command === 'create' ? 'The LUN file to create' : 'The LUN file to grow' })
      .option('size', { type: 'string', demandOption: true, describe: command === 'create' ? 'Size, e.g. 8G (K/M/G/T: 1024-based; whole 4 KiB)' : 'New size, larger than the current one, e.g. 16G' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' });
    return command === 'create'
      ? base.option('preallocate', { type: 'boolean', default: false, describe: 'Write every byte now (thick) instead of a sparse file; progress on stderr' })
      : base;
  };
}

class ProvisionError extends Error {}
/** The command line asked for something that is not possible (exit code 2). */
class UsageError extends ProvisionError {}

function sizeOf(text: string): number {
  const bytes = parseSize(text);
  if (bytes === undefined) throw new UsageError(`--size ${JSON.stringify(text)} is not a size (e.g. 8G, 512M, 1073741824)`);
  if (bytes % SIZE_GRANULE !== 0) throw new UsageError(`--size ${text} is ${bytes} bytes: not a whole number of ${SIZE_GRANULE}-byte blocks`);
  return bytes;
}

/** Run create or resize; exit code 0 done, 1 failed, 2 usage. */
export async function provisionCommand(command: 'create' | 'resize', args: ProvisionArgs, io: ProvisionIo): Promise<number> {
  const file = path.resolve(io.cwd, args.path);
  try {
    const sizeBytes = sizeOf(args.size);
    const result = command === 'create' ? await create(file, sizeBytes, args.preallocate === true, io) : await resize(file, sizeBytes);
    const { summary, ...fields } = result;
    io.stdout(args.json ? `${JSON.stringify(fields, null, 2)}\n` : `${summary}\n`);
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (args.json) io.stdout(`${JSON.stringify({ result: 'FAIL', path: file, error: message }, null, 2)}\n`);
    io.stderr(`${message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

interface Result {
  result: 'SUCCESS';
  path: string;
  sizeBytes: number;
  size: string;
  summary: string;
}

async function create(file: string, sizeBytes: number, preallocate: boolean, io: ProvisionIo): Promise<Result & { preallocated: boolean }> {
  await fs.promises.stat(path.dirname(file)).catch((e: NodeJS.ErrnoException) => {
    throw new ProvisionError(`${path.dirname(file)}: ${e.code === 'ENOENT' ? 'no such directory (is the gluster volume mounted?)' : e.message}`);
  });
  const handle = await fs.promises.open(file, 'wx', 0o644).catch((e: NodeJS.ErrnoException) => {
    throw new ProvisionError(e.code === 'EEXIST' ? `${file} exists already: create never overwrites a LUN file (to grow it: glfs-target resize)` : `${file}: ${e.message}`);
  });
  try {
    if (preallocate) await writeZeros(handle, sizeBytes, io);
    else await handle.truncate(sizeBytes);
    await handle.sync();
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.promises.unlink(file).catch(() => undefined); // a half-made LUN file is no LUN file
    throw new ProvisionError(`${file}: creating failed, the file is removed again: ${(e as Error).message}`);
  }
  await handle.close();
  const kind = preallocate ? 'preallocated' : 'sparse';
  return { result: 'SUCCESS', path: file, sizeBytes, size: formatSize(sizeBytes), preallocated: preallocate, summary: `created ${file}: ${formatSize(sizeBytes)} (${sizeBytes} bytes), ${kind}` };
}

/** Write `sizeBytes` of zeros, saying how far it got on stderr (in place on a terminal, every 10 % otherwise). */
async function writeZeros(handle: fs.promises.FileHandle, sizeBytes: number, io: ProvisionIo): Promise<void> {
  const zeros = Buffer.alloc(Math.min(PREALLOCATE_CHUNK, sizeBytes));
  let lastTenth = -1;
  const show = (done: number) => {
    const percent = Math.floor((done * 100) / sizeBytes);
    const line = `preallocating: ${formatSize(Math.floor(done / 1048576) * 1048576)} of ${formatSize(sizeBytes)} (${percent}%)`;
    if (io.stderrIsTerminal) io.stderr(`\r${line}${done === sizeBytes ? '\n' : ''}`);
    else if (Math.floor(percent / 10) !== lastTenth) {
      lastTenth = Math.floor(percent / 10);
      io.stderr(`${line}\n`);
    }
  };
  for (let done = 0; done < sizeBytes;) {
    const n = Math.min(zeros.length, sizeBytes - done);
    const { bytesWritten } = await handle.write(zeros, 0, n, done);
    done += bytesWritten;
    show(done);
  }
}

async function resize(file: string, sizeBytes: number): Promise<Result & { previousSizeBytes: number }> {
  const handle = await fs.promises.open(file, 'r+').catch((e: NodeJS.ErrnoException) => {
    throw new ProvisionError(e.code === 'ENOENT' ? `${file} does not exist (to make it: glfs-target create)` : `${file}: ${e.message}`);
  });
  try {
    // The lock every server holds on a file it serves (file-backend.ts): a served file is grown
    // through its server, which tells the initiators (CAPACITY DATA HAS CHANGED).
    await flock(handle.fd, 'exnb').catch((e: unknown) => {
      throw new ProvisionError(isLockHeld(e)
        ? `${file} is served by a running glfs-target: set its LUN's "size" to ${sizeBytes} in that server's config and run "glfs-target reload" (the server grows the file and tells the initiators)`
        : `${file}: cannot lock: ${(e as Error).message}`);
    });
    const { size: previous } = await handle.stat();
    if (sizeBytes < previous) throw new ProvisionError(`${file} is ${formatSize(previous)} (${previous} bytes): shrinking to ${formatSize(sizeBytes)} is refused (it would cut off data)`);
    if (sizeBytes > previous) {
      await handle.truncate(sizeBytes);
      await handle.sync();
    }
    const summary = sizeBytes === previous ? `${file} is ${formatSize(sizeBytes)} already` : `resized ${file}: ${formatSize(previous)} → ${formatSize(sizeBytes)} (${sizeBytes} bytes)`;
    return { result: 'SUCCESS', path: file, sizeBytes, size: formatSize(sizeBytes), previousSizeBytes: previous, summary };
  } finally {
    await handle.close(); // closing drops the lock
  }
}
