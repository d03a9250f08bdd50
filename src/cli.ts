/**
 * Command line: `glfs-target serve|check|status|reload|create|resize|schema|completion`.
 *
 *   glfs-target serve [--config FILE] [--log-level L] [--log-format pretty|json] [--data-dir D] [--port N]   (serve.ts)
 *   glfs-target check --config FILE                                                                          (check-command.ts)
 *   glfs-target status [--json] [--socket S | --config FILE | --data-dir D]
 *   glfs-target reload [--json] [--socket S | --config FILE | --data-dir D]   the running server reloads its config file
 *   glfs-target create PATH --size 8G [--preallocate] [--json]                 (provision-command.ts)
 *   glfs-target resize PATH --size 16G [--json]
 *   glfs-target schema              JSON Schema of the config file (docs/target.schema.json)
 *   glfs-target completion          bash/zsh completion script (yargs)
 *
 * Exit codes: 0 success (serve: clean shutdown on SIGTERM/SIGINT), 1 runtime failure
 * (startup failed, stop failed, second signal), 2 usage or configuration error.
 *
 * The command logic is runCli(), testable in-process; this module runs it on process.argv
 * only when it is the program's entry point (bin/glfs-target.js or dist/cli.js).
 */
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pino from 'pino';
import yargs from 'yargs';
import { checkCommand } from './check-command.js';
import { configJsonSchema, LOG_LEVELS, type LogLevel } from './config/schema.js';
import type { EffectiveConfig } from './config/types.js';
import { LOG_FORMATS, type LogFormat, type Logger } from './log.js';
import type { OperationsContext, Operations } from './ops/operations.js';
import { reloadCommand, statusCommand, statusOptions } from './ops/status-command.js';
import { provisionCommand, provisionOptions } from './provision-command.js';
import { serve } from './serve.js';

export { connectHints } from './serve.js';

/** What serve needs from the server module (src/iscsi/server.ts). */
export interface ServerLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** May return (or resolve to) the list of changes that need a restart to take effect. */
  reload?(config: EffectiveConfig): unknown;
}
export interface ServerModule {
  IscsiServer: new (config: EffectiveConfig, logger: Logger) => ServerLike;
  /** The control socket and metrics listener of a started server (src/ops); tests that fake the server leave it out. */
  startOperations?: (server: ServerLike, context: OperationsContext) => Promise<Operations>;
}

/** The subset of `process` used for signals (a plain EventEmitter in tests). */
export interface SignalSource {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Log output of `serve` (default: stdout, synchronous). */
  logDestination?: pino.DestinationStream;
  /** Whether stdout is a terminal: `serve` then logs readable lines unless --log-format says otherwise. */
  stdoutIsTerminal: boolean;
  /** Whether stderr is a terminal: `create --preallocate` then redraws its progress line in place. */
  stderrIsTerminal: boolean;
  /** Source of SIGTERM/SIGINT/SIGHUP and uncaughtException/unhandledRejection (default: process). */
  signals: SignalSource;
  /** Immediate exit (second signal, crash). Default process.exit. */
  exit(code: number): void;
  /** Loads the server implementation. Default: import('./iscsi/server.js'). */
  loadServer(): Promise<ServerModule>;
  /** Called once serve has started (tests use it to know when to send signals). */
  onServing?(server: ServerLike, config: EffectiveConfig): void;
}

function defaultIo(): CliIo {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
    stdoutIsTerminal: process.stdout.isTTY === true,
    stderrIsTerminal: process.stderr.isTTY === true,
    signals: process,
    exit: (code) => process.exit(code),
    // Loaded lazily so that `check` and `--help` do not load the server code (and its native deps).
    loadServer: async () => {
      const [{ IscsiServer }, { startOperations }] = await Promise.all([import('./iscsi/server.js'), import('./ops/operations.js')]);
      return { IscsiServer, startOperations: (server, context) => startOperations(server as InstanceType<typeof IscsiServer>, context) };
    },
  };
}

/** Version from package.json, read at runtime relative to this module (src/ or dist/). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Where the JSON Schema of the config file is: docs/target.schema.json beside this module's package. */
function schemaReference(): string {
  return fileURLToPath(new URL('../docs/target.schema.json', import.meta.url));
}

interface Args {
  _: Array<string | number>;
  config?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  dataDir?: string;
  port?: number;
  json?: boolean;
  socket?: string;
  path?: string;
  size?: string;
  preallocate?: boolean;
}

/** Run the CLI with `argv` (without node and script). Resolves with the exit code. */
export async function runCli(argv: string[], ioOverrides: Partial<CliIo> = {}): Promise<number> {
  const io: CliIo = { ...defaultIo(), ...ioOverrides };
  const version = packageVersion();
  const parser = yargs()
    .scriptName('glfs-target')
    .usage('$0 <command> [options]')
    .command('serve', 'Run the iSCSI target', (y) =>
      y
        .option('config', { alias: 'c', type: 'string', describe: 'JSON config file' })
        .option('log-level', { type: 'string', choices: LOG_LEVELS, describe: 'Log level (overrides the config file)' })
        .option('log-format', { type: 'string', choices: LOG_FORMATS, describe: 'Log lines: pretty (readable) or json (one object per line) [default: pretty on a terminal, else json]' })
        .option('data-dir', { type: 'string', describe: 'Directory for files the server creates [default: $GLFS_TARGET_DATA_DIR or ./data]' })
        .option('port', { type: 'number', describe: 'Port of the built-in configuration [default: 3260]' })
        .epilog(
          'Without --config, serves the built-in configuration: target iqn.2016-06.org.gluster:glfs-target with LUN 0 a sparse 1 GiB file <data-dir>/lun0.img, any initiator, on 127.0.0.1 only.\n' +
            'Signals: SIGTERM/SIGINT stop cleanly (a second one exits at once), SIGHUP reloads --config.',
        ),
    )
    .command('check', 'Validate a config file, print the effective config', (y) =>
      y.option('config', { alias: 'c', type: 'string', demandOption: true, describe: 'JSON config file' }),
    )
    .command('status', 'Show targets, LUNs, sessions and counters of the running server (root only)', statusOptions)
    .command('reload', 'Make the running server reload its config file, as SIGHUP does, and say what changed (root only)', statusOptions)
    .command('create <path>', 'Create a LUN file (sparse, or --preallocate), like gluster-block create', provisionOptions('create'))
    .command('resize <path>', 'Grow a LUN file that no server serves (a served one: change its size in the config, then reload)', provisionOptions('resize'))
    .command('schema', 'Print the JSON Schema of the config file (for editors and other tools)')
    .completion('completion', 'Print a bash/zsh completion script: glfs-target completion >> ~/.bashrc')
    .demandCommand(1, 'Give a command: serve, check, status, reload, create, resize or schema.')
    .epilog(`Config file reference: README.md, section "Configuration"; every field with its type, range and default is in the JSON Schema that "glfs-target schema" prints, also kept as\n  ${schemaReference()}`)
    .strict()
    .version(version)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .exitProcess(false);

  let parseError: Error | undefined;
  let output = '';
  let args: Args;
  try {
    args = (await parser.parseAsync(argv, {}, (err: Error | undefined, _argv: unknown, out: string) => {
      parseError = err ?? undefined;
      output = out;
    })) as unknown as Args;
  } catch (e) {
    parseError = e as Error;
    args = { _: [] };
  }
  if (parseError) {
    io.stderr(`${parseError.message}\nRun "glfs-target --help" for usage.\n`);
    return 2;
  }
  if (output !== '') {
    // --help or --version
    io.stdout(output.endsWith('\n') ? output : `${output}\n`);
    return 0;
  }

  const command = String(args._[0]);
  if (command === 'check') return checkCommand(args.config!, io);
  if (command === 'status' || command === 'reload') {
    const run = command === 'status' ? statusCommand : reloadCommand;
    return run({ json: args.json === true, socket: args.socket, config: args.config, dataDir: args.dataDir }, io);
  }
  if (command === 'create' || command === 'resize') {
    return provisionCommand(command, { path: args.path!, size: args.size!, json: args.json === true, preallocate: args.preallocate === true }, io);
  }
  if (command === 'schema') {
    io.stdout(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    return 0;
  }
  if (command === 'serve') {
    if (args.port !== undefined && args.config !== undefined) {
      io.stderr('--port applies only to the built-in default configuration; with --config, set the port in the "portals" of the file.\n');
      return 2;
    }
    if (args.port !== undefined && !(Number.isInteger(args.port) && args.port >= 1 && args.port <= 65535)) {
      io.stderr('--port must be an integer from 1 to 65535.\n');
      return 2;
    }
    return serve(args, io, version);
  }
  io.stderr(`Unknown command ${JSON.stringify(command)}.\nRun "glfs-target --help" for usage.\n`);
  return 2;
}

// ---------------------------------------------------------------------------------------------
// Entry point

async function main(): Promise<void> {
  const code = await runCli(process.argv.slice(2));
  // Let stdout drain (pino writes synchronously; this covers check's output on pipes) and exit
  // even if something (a timer, a socket) would keep the event loop alive.
  process.stdout.write('', () => process.exit(code));
}

function invokedAsProgram(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    const real = realpathSync(entry);
    const self = fileURLToPath(import.meta.url);
    return real === self || real === path.resolve(path.dirname(self), '../bin/glfs-target.js');
  } catch {
    return false;
  }
}

if (invokedAsProgram()) void main();

