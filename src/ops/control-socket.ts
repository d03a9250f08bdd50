/**
 * The local control socket: a unix socket only root can open (mode 0600; the kernel checks write
 * permission on connect, and root alone passes it), through which `glfs-target status` asks the
 * running server for its state and `glfs-target reload` has it reload its config file. One
 * request per connection, one JSON line each way:
 *
 *   → {"command":"status"}    or    {"command":"reload"}
 *   ← {"ok":true,"result":{...}}    or    {"ok":false,"error":"..."}
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';

/** What the server answers to, by command name. */
export type ControlCommands = Record<string, () => Promise<unknown>>;

/** Longest request accepted, and how long a client may take to send it. */
const MAX_REQUEST_BYTES = 4096;
const REQUEST_TIMEOUT_MS = 5000;

/** The server's end. */
export class ControlSocket {
  private constructor(
    private readonly listener: net.Server,
    readonly path: string,
  ) {}

  /**
   * Listen on `socketPath` (its directory is created with mode 0700). A socket file left by a
   * server that is gone is replaced; one a running server answers on is not (EADDRINUSE).
   */
  static async listen(socketPath: string, commands: ControlCommands, log: Logger): Promise<ControlSocket> {
    await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    await removeStaleSocket(socketPath);
    const listener = net.createServer((socket) => serve(socket, commands, log));
    // The socket file is created by bind() inside listen(): under this umask it is 0600 from the start.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(socketPath, () => {
          listener.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    await chmod(socketPath, 0o600);
    listener.on('error', (err) => log.error({ err, socket: socketPath }, 'control socket error'));
    return new ControlSocket(listener, socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
    // net.Server.close() removes the socket file of a unix socket itself; this covers a listener that already lost it.
    await unlink(this.path).catch(() => undefined);
  }
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  const st = await lstat(socketPath).catch(() => undefined);
  if (st === undefined) return;
  if (!st.isSocket()) throw Object.assign(new Error(`${socketPath} exists and is not a socket; remove it or choose another controlSocket`), { code: 'EEXIST' });
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => (probe.destroy(), resolve(true)));
    probe.once('error', () => resolve(false));
  });
  if (alive) throw Object.assign(new Error(`another glfs-target is running with control socket ${socketPath}`), { code: 'EADDRINUSE' });
  await unlink(socketPath);
}

function serve(socket: net.Socket, commands: ControlCommands, log: Logger): void {
  let text = '';
  const answer = (reply: { ok: true; result: unknown } | { ok: false; error: string }) => {
    if (!socket.writable) return;
    socket.end(`${JSON.stringify(reply)}\n`);
  };
  socket.setEncoding('utf8');
  socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy());
  socket.on('error', () => undefined);
  socket.on('data', (chunk: string) => {
    text += chunk;
    const end = text.indexOf('\n');
    if (end < 0) {
      if (text.length > MAX_REQUEST_BYTES) answer({ ok: false, error: 'request too long' });
      return;
    }
    socket.removeAllListeners('data');
    socket.setTimeout(0); // the request is in: a command (a reload growing LUN files) may take its time
    let command: unknown;
    try {
      command = (JSON.parse(text.slice(0, end)) as { command?: unknown }).command;
    } catch {
      answer({ ok: false, error: 'the request is not JSON' });
      return;
    }
    const run = typeof command === 'string' && Object.hasOwn(commands, command) ? commands[command] : undefined;
    if (run === undefined) {
      answer({ ok: false, error: `unknown command ${JSON.stringify(command)}; known: ${Object.keys(commands).join(', ')}` });
      return;
    }
    run().then(
      (result) => answer({ ok: true, result }),
      (err: unknown) => {
        log.error({ err, command }, 'control command failed');
        answer({ ok: false, error: err instanceof Error ? err.message : String(err) });
      },
    );
  });
}

/** The client's end: send `command`, resolve with the server's result. Errors carry a message for the person who ran the command. */
export async function askControlSocket(socketPath: string, command: string, timeoutMs = 10_000): Promise<unknown> {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(socketPath);
    let reply = '';
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer from ${socketPath} within ${timeoutMs / 1000} s`)));
    socket.on('connect', () => socket.write(`${JSON.stringify({ command })}\n`));
    socket.on('data', (chunk: string) => (reply += chunk));
    socket.on('end', () => resolve(reply));
    socket.on('error', (err: NodeJS.ErrnoException) => reject(new Error(connectProblem(socketPath, err))));
  });
  let reply: { ok?: boolean; result?: unknown; error?: string };
  try {
    reply = JSON.parse(text) as typeof reply;
  } catch {
    throw new Error(`${socketPath} answered something that is not JSON: is it a glfs-target control socket?`);
  }
  if (reply.ok !== true) throw new Error(`the server refused "${command}": ${reply.error ?? 'no reason given'}`);
  return reply.result;
}

function connectProblem(socketPath: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${socketPath}: the control socket is for root only (run: sudo glfs-target status)`;
    case 'ENOENT':
      return `no control socket at ${socketPath}: is glfs-target serve running? (its "controlSocket" setting, or --socket, names another path)`;
    case 'ECONNREFUSED':
      return `nothing listens on ${socketPath}: the glfs-target that created it is no longer running`;
    default:
      return `${socketPath}: ${err.message}`;
  }
}
