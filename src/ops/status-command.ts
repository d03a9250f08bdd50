/**
 * `glfs-target status [--json]`: ask the running server over its control socket and print what it
 * says, as text for a person or as JSON (docs/operating.md) for scripts. `glfs-target reload
 * [--json]`: have it reload its config file (as SIGHUP does) and print what changed.
 */
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Argv } from 'yargs';
import { parseJsonText } from '../config/json.js';
import { ConfigError, parseConfig } from '../config/load.js';
import { DEFAULT_CONTROL_SOCKET } from '../config/schema.js';
import { askControlSocket } from './control-socket.js';
import type { ServerStatus } from './server-status.js';
import { statusText } from './status-text.js';

export interface StatusOptions {
  json: boolean;
  /** The socket itself. */
  socket?: string;
  /** A config file: its controlSocket. */
  config?: string;
  /** The embedded default's data directory: <dir>/control.sock. */
  dataDir?: string;
}

/** The command's options, for yargs. */
export function statusOptions(y: Argv) {
  return y
    .option('json', { type: 'boolean', default: false, describe: 'Print JSON (fields: docs/operating.md)' })
    .option('socket', { type: 'string', describe: `Control socket of the server [default: ${DEFAULT_CONTROL_SOCKET}, else ./data/control.sock]` })
    .option('config', { alias: 'c', type: 'string', describe: 'Take the control socket from this config file (its "controlSocket")' })
    .option('data-dir', { type: 'string', describe: "The built-in configuration's data directory: its control.sock" })
    .conflicts('socket', ['config', 'data-dir'])
    .conflicts('config', 'data-dir');
}

export interface StatusIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Exit code: 0 shown, 1 the server could not be asked. */
export async function statusCommand(opts: StatusOptions, io: StatusIo): Promise<number> {
  const status = (await ask('status', opts, io)) as ServerStatus | undefined;
  if (status === undefined) return 1;
  io.stdout(opts.json ? `${JSON.stringify(status, null, 2)}\n` : statusText(status));
  return 0;
}

/** Exit code: 0 reloaded, 1 refused (the server keeps its configuration; the reason is on stderr) or not asked. */
export async function reloadCommand(opts: StatusOptions, io: StatusIo): Promise<number> {
  const outcome = (await ask('reload', opts, io, RELOAD_TIMEOUT_MS)) as { changed?: string[]; needRestart?: string[] } | undefined;
  if (outcome === undefined) return 1;
  const changed = outcome.changed ?? [];
  const needRestart = outcome.needRestart ?? [];
  if (opts.json) io.stdout(`${JSON.stringify({ changed, needRestart }, null, 2)}\n`);
  else {
    io.stdout(changed.length > 0 ? `reloaded: ${changed.join('; ')}\n` : 'reloaded: no target or LUN changed\n');
    if (needRestart.length > 0) io.stdout(`needs a restart to take effect: ${needRestart.join('; ')}\n`);
  }
  return 0;
}

/** A reload may open LUN files on a slow volume and grow them: give it longer than a status. */
const RELOAD_TIMEOUT_MS = 120_000;

/** The server's answer to `command`, or undefined once the reason it has none is on stderr. */
async function ask(command: string, opts: StatusOptions, io: StatusIo, timeoutMs?: number): Promise<unknown> {
  try {
    return await askControlSocket(await controlSocketPath(opts, io), command, timeoutMs);
  } catch (e) {
    io.stderr(`${e instanceof ConfigError ? e.issues.join('\n') : (e as Error).message}\n`);
    return undefined;
  }
}

/**
 * --socket, else the --config file's controlSocket, else <--data-dir>/control.sock, else the first
 * that exists of the default (/run/glfs-target/control.sock) and the embedded default's
 * ($GLFS_TARGET_DATA_DIR or ./data)/control.sock.
 */
async function controlSocketPath(opts: StatusOptions, io: StatusIo): Promise<string> {
  if (opts.socket !== undefined) return path.resolve(io.cwd, opts.socket);
  if (opts.config !== undefined) return controlSocketOf(path.resolve(io.cwd, opts.config), io);
  if (opts.dataDir !== undefined) return path.resolve(io.cwd, opts.dataDir, 'control.sock');
  const candidates = [DEFAULT_CONTROL_SOCKET, path.resolve(io.cwd, io.env.GLFS_TARGET_DATA_DIR ?? 'data', 'control.sock')];
  for (const c of candidates) {
    // A path root alone may reach exists all the same: connecting says so.
    if (await access(c).then(() => true, (e: NodeJS.ErrnoException) => e.code !== 'ENOENT')) return c;
  }
  throw new Error(`no control socket at ${candidates.join(' or ')}: is glfs-target serve running? Name its socket with --socket, --config or --data-dir`);
}

/** The controlSocket of a config file. Its CHAP secrets are not read: the shell asking may not have their variables. */
async function controlSocketOf(file: string, io: StatusIo): Promise<string> {
  const parsed = parseJsonText(await readFile(file, 'utf8'));
  if (parsed.syntaxError) throw new ConfigError([`${file}:${parsed.syntaxError.line}:${parsed.syntaxError.column}: invalid JSON: ${parsed.syntaxError.message}`]);
  return parseConfig(parsed.value, path.dirname(file), { env: io.env, cwd: io.cwd }).controlSocket;
}
