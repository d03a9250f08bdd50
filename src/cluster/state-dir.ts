import fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { flock, isLockHeld, readFileIfExists, replaceFile } from '../backend/atomic-file.js';
import { asOutOfSpace } from '../backend/out-of-space.js';

/** Calls of one state directory in the file I/O thread pool at once (see LunStateDir). */
const MAX_CALLS = 2;
/** How long a call waits for a slot before it fails with ETIMEDOUT. */
const SLOT_WAIT_MS = 3000;

/**
 * The state a LUN file carries for the servers that share it, in the directory
 * `<lun file>.glfs-target/` next to it on the same (gluster) volume: its identity, each serving
 * node's heartbeat, the owner record, handover requests and persistent reservations. The
 * servers find each other only through it.
 *
 * Files are small JSON documents replaced atomically (write a temporary file, rename it over the
 * old one), so a reader sees the old or the new document, never a mix. Read-modify-write
 * sequences across servers take an exclusive lock on `<name>.lock` in the directory (flock,
 * which gluster's locks translator enforces across clients).
 *
 * A hung mount answers no system call, and each one it holds keeps a thread of the file I/O
 * pool: at most MAX_CALLS of this directory's calls are in the pool at once, and a call that
 * finds no free slot for SLOT_WAIT_MS fails with ETIMEDOUT. Commands refused while the volume
 * hangs so never take the threads the other LUNs need.
 */
export class LunStateDir {
  readonly dir: string;
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly lunPath: string) {
    this.dir = `${lunPath}.glfs-target`;
  }

  async ensure(): Promise<void> {
    await this.gated(() => fs.promises.mkdir(this.dir, { recursive: true }));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** The parsed document, or undefined when there is none. Throws on unreadable or malformed JSON. */
  async readJson<T>(name: string): Promise<T | undefined> {
    const buf = await this.read(name);
    return buf === undefined ? undefined : (JSON.parse(buf.toString('utf8')) as T);
  }

  read(name: string): Promise<Buffer | undefined> {
    return this.gated(() => readFileIfExists(this.path(name)));
  }

  /**
   * Replace `name` atomically; `durable` also fsyncs it (state that must survive a crash). On a
   * full volume it rejects with ENOSPC, however gluster put it (out-of-space.ts).
   */
  write(name: string, data: Buffer, durable = false): Promise<void> {
    return this.gated(() => replaceFile(this.path(name), data, durable)).catch(async (err: NodeJS.ErrnoException) => {
      throw await this.gated(() => asOutOfSpace(this.dir, err, data.length)).catch(() => err);
    });
  }

  writeJson(name: string, value: unknown, durable = false): Promise<void> {
    return this.write(name, Buffer.from(JSON.stringify(value, null, 2) + '\n', 'utf8'), durable);
  }

  remove(name: string, durable = false): Promise<void> {
    return this.gated(() => replaceFile(this.path(name), undefined, durable));
  }

  /** Names in the directory starting with `prefix` (temporary files excluded). */
  async list(prefix: string): Promise<string[]> {
    const names = await this.gated(() => fs.promises.readdir(this.dir)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    return names.filter((n) => n.startsWith(prefix) && !n.startsWith('.'));
  }

  /**
   * Run `fn` holding the exclusive lock `<name>.lock` (polled with a non-blocking flock, so a
   * holder that dies — or a node the bricks drop — never blocks anyone for longer than the lock
   * is held). Rejects after `timeoutMs` without running `fn`.
   */
  async withLock<T>(name: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
    const fh = await this.gated(() => fs.promises.open(this.path(`${name}.lock`), 'a', 0o644));
    try {
      await this.lockFd(fh.fd, timeoutMs);
      return await fn();
    } finally {
      await fh.close(); // releases the lock
    }
  }

  /** Take an exclusive flock on `fd`, polling; rejects with ETIMEDOUT after `timeoutMs`. */
  async lockFd(fd: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.gated(() => flock(fd, 'exnb'));
        return;
      } catch (err) {
        if (!isLockHeld(err)) throw err;
        if (Date.now() >= deadline) throw Object.assign(new Error(`${this.dir}: a lock is still held after ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  // SidecarFiles for a reservation store kept here (`pr.json`).
  readSidecar = (name: string): Promise<Buffer | undefined> => this.read(name);
  writeSidecar = (name: string, data: Buffer | undefined): Promise<void> => this.gated(() => replaceFile(this.path(name), data, true));

  /** The sidecar a single server kept before the state directory existed (`<lun file>.<name>`). */
  readLegacySidecar(name: string): Promise<Buffer | undefined> {
    return this.gated(() => readFileIfExists(`${this.lunPath}.${name}`));
  }

  /** `op` once one of the MAX_CALLS slots is free; the slot is freed when `op` settles, however late. */
  private async gated<T>(op: () => Promise<T>): Promise<T> {
    await this.slot();
    try {
      return await op();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next(); // the slot passes straight on
      else this.inFlight--;
    }
  }

  private slot(): Promise<void> {
    if (this.inFlight < MAX_CALLS) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(Object.assign(new Error(`${this.dir}: the volume has not answered ${MAX_CALLS} calls for ${SLOT_WAIT_MS} ms`), { code: 'ETIMEDOUT' }));
      }, SLOT_WAIT_MS);
      this.waiting.push(grant);
    });
  }

  get lunFileName(): string {
    return basename(this.lunPath);
  }

  get lunDirectory(): string {
    return dirname(this.lunPath);
  }
}
