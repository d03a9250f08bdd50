/**
 * Command line: `glfs-target serve|check|status|schema|completion`.
 *
 *   glfs-target serve [--config FILE] [--log-level L] [--log-format pretty|json] [--data-dir D] [--port N]
 *   glfs-target check --config FILE
 *   glfs-target status [--json] [--socket S | --config FILE | --data-dir D]
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
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pino from 'pino';
import yargs from 'yargs';
import { configFileOf, hasInlineSecrets } from './config/config-file-of.js';
import { ConfigError, configWarnings, embeddedDefaultConfig, loadConfigFile, maskSecrets } from './config/load.js';
import { assertOnItsVolume, volumeOptionWarnings } from './cluster/volume-options.js';
import { configJsonSchema, LOG_LEVELS, type LogLevel } from './config/schema.js';
import { formatHostPort, isWildcardHost } from './config/portal.js';
import type { EffectiveConfig } from './config/types.js';
import { createLogger, LOG_FORMATS, type LogFormat, type Logger } from './log.js';
import type { Operations, OperationsContext } from './ops/operations.js';
import { statusCommand, statusOptions } from './ops/status-command.js';

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
    .command('schema', 'Print the JSON Schema of the config file (for editors and other tools)')
    .completion('completion', 'Print a bash/zsh completion script: glfs-target completion >> ~/.bashrc')
    .demandCommand(1, 'Give a command: serve, check, status or schema.')
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
  if (command === 'check') return check(args.config!, io);
  if (command === 'status') {
    return statusCommand({ json: args.json === true, socket: args.socket, config: args.config, dataDir: args.dataDir }, io);
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
// check

async function check(configFile: string, io: CliIo): Promise<number> {
  let config: EffectiveConfig;
  try {
    config = await loadConfigFile(configFile, { env: io.env, cwd: io.cwd });
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const issue of e.issues) io.stderr(`${issue}\n`);
      return 2;
    }
    io.stderr(`error: ${(e as Error).message}\n`);
    return 1;
  }
  io.stdout(`${JSON.stringify(maskSecrets(configFileOf(config)), null, 2)}\n`);
  for (const w of configWarnings(config)) io.stderr(`warning: ${w}\n`);
  if (hasInlineSecrets(config)) {
    io.stderr('note: inline CHAP secrets are printed as "***": put them back (or use secretFile/secretEnv) before serving this output\n');
  }
  for (const w of await volumeOptionWarnings(lunPathsOf(config))) io.stderr(`warning: ${w}\n`);
  // What serve would refuse: a LUN file off its gluster volume (never served from the local disk).
  let misplaced = 0;
  for (const lun of config.targets.flatMap((t) => t.luns)) {
    await assertOnItsVolume(lun.path, lun.volume).catch((e: unknown) => {
      misplaced++;
      io.stderr(`error: ${(e as Error).message}\n`);
    });
  }
  return misplaced > 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// serve

async function loadServeConfig(args: Args, io: CliIo): Promise<EffectiveConfig> {
  const opts = { env: io.env, cwd: io.cwd };
  let config: EffectiveConfig;
  if (args.config !== undefined) {
    config = await loadConfigFile(args.config, opts);
    if (args.dataDir !== undefined) config = { ...config, dataDir: path.resolve(io.cwd, args.dataDir) };
  } else {
    config = embeddedDefaultConfig({ ...opts, ...(args.dataDir !== undefined ? { dataDir: args.dataDir } : {}), ...(args.port !== undefined ? { port: args.port } : {}) });
  }
  if (args.logLevel !== undefined) config = { ...config, logLevel: args.logLevel };
  return config;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** iscsiadm/qemu command lines for reaching `config`'s first target through its first portal. */
export function connectHints(config: EffectiveConfig): { discovery: string; login: string; qemu: string } | undefined {
  const portal = config.portals[0];
  const target = config.targets[0];
  if (!portal || !target) return undefined;
  const addr =
    portal.advertise ?? formatHostPort({ host: isWildcardHost(portal.host) ? (portal.host.includes(':') ? '::1' : '127.0.0.1') : portal.host, port: portal.port });
  const lun = target.luns[0]?.lun ?? 0;
  return {
    discovery: `iscsiadm -m discovery -t sendtargets -p ${addr}`,
    login: `iscsiadm -m node -T ${target.iqn} -p ${addr} --login`,
    qemu: `qemu-system-x86_64 -drive file=iscsi://${addr}/${target.iqn}/${lun},format=raw,if=virtio`,
  };
}

async function serve(args: Args, io: CliIo, version: string): Promise<number> {
  const configFile = args.config;
  const logger = createLogger(args.logLevel ?? 'info', io.logDestination, args.logFormat ?? (io.stdoutIsTerminal ? 'pretty' : 'json'));

  let config: EffectiveConfig;
  try {
    config = await loadServeConfig(args, io);
  } catch (e) {
    if (e instanceof ConfigError) {
      logger.fatal({ configFile, issues: e.issues }, `invalid configuration: ${e.issues.join('; ')}`);
      return 2;
    }
    logger.fatal({ err: e }, `cannot load the configuration: ${errorMessage(e)}`);
    return 1;
  }
  logger.level = config.logLevel;
  for (const w of configWarnings(config)) logger.warn(w);
  for (const w of await volumeOptionWarnings(lunPathsOf(config))) logger.warn(w);

  if (configFile === undefined) {
    try {
      await mkdir(config.dataDir, { recursive: true });
    } catch (e) {
      logger.fatal({ err: e, dataDir: config.dataDir }, `cannot create the data directory ${config.dataDir}: ${errorMessage(e)}`);
      return 1;
    }
  }

  logger.info(
    {
      version,
      configFile: configFile ?? null,
      portals: config.portals.map((p) => `${formatHostPort(p)},${p.tpgt}`),
      targets: config.targets.map((t) => ({ iqn: t.iqn, luns: t.luns.map((l) => ({ lun: l.lun, path: l.path })) })),
    },
    `glfs-target ${version} starting`,
  );

  let mod: ServerModule;
  try {
    mod = await io.loadServer();
  } catch (e) {
    logger.fatal({ err: e }, `cannot load the server module: ${errorMessage(e)}`);
    return 1;
  }
  let server: ServerLike;
  try {
    server = new mod.IscsiServer(config, logger);
  } catch (e) {
    logger.fatal({ err: e }, `startup failed: ${errorMessage(e)}`);
    return 1;
  }

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping = false;
  // Started means serving iSCSI, with the control socket and metrics listener beside it.
  const operationsContext: OperationsContext = { config, version, configFile: configFile === undefined ? null : path.resolve(io.cwd, configFile), startedAt: new Date(), log: logger };
  const starting = server.start().then(() => mod.startOperations?.(server, operationsContext));
  starting.catch(() => {}); // handled below; avoid an unhandled rejection if a signal handler awaits it first

  const onStopSignal = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, `${signal} received again; exiting immediately`);
      io.exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, `${signal} received; shutting down`);
    void (async () => {
      let operations: Operations | undefined;
      try {
        operations = await starting;
      } catch {
        return; // the startup failure path reports and exits
      }
      try {
        await operations?.close();
        await server.stop();
        logger.info('stopped');
        resolveDone(0);
      } catch (e) {
        logger.error({ err: e }, `shutdown failed: ${errorMessage(e)}`);
        resolveDone(1);
      }
    })();
  };
  const onSigterm = () => onStopSignal('SIGTERM');
  const onSigint = () => onStopSignal('SIGINT');

  let reloading: Promise<void> = Promise.resolve();
  const reload = async () => {
    if (stopping) return;
    if (configFile === undefined) {
      logger.warn('SIGHUP received, but the server runs the built-in default configuration: nothing to reload');
      return;
    }
    logger.info({ configFile }, 'SIGHUP received; reloading the configuration');
    let next: EffectiveConfig;
    try {
      next = await loadServeConfig(args, io);
    } catch (e) {
      const issues = e instanceof ConfigError ? e.issues : [errorMessage(e)];
      logger.error({ configFile, issues }, `reload refused, keeping the current configuration: ${issues.join('; ')}`);
      return;
    }
    if (typeof server.reload !== 'function') {
      logger.warn('this server cannot reload its configuration; restart it to apply the changes');
      return;
    }
    for (const w of configWarnings(next)) logger.warn(w);
    let pending: unknown;
    try {
      pending = await server.reload(next);
    } catch (e) {
      logger.error({ err: e }, `reload failed, keeping the current configuration: ${errorMessage(e)}`);
      return;
    }
    config = next;
    logger.level = next.logLevel;
    if (Array.isArray(pending) && pending.length > 0) {
      logger.warn({ needRestart: pending }, `configuration reloaded, but these changes take effect only after a restart: ${pending.join(', ')}`);
    } else {
      logger.info('configuration reloaded');
    }
  };
  const onSighup = () => {
    reloading = reloading.then(reload, reload);
  };
  const onCrash = (err: unknown) => {
    logger.fatal({ err }, `internal error: ${errorMessage(err)}`);
    io.exit(1);
  };

  const handlers: Array<[string, (...a: any[]) => void]> = [
    ['SIGTERM', onSigterm],
    ['SIGINT', onSigint],
    ['SIGHUP', onSighup],
    ['uncaughtException', onCrash],
    ['unhandledRejection', onCrash],
  ];
  for (const [ev, fn] of handlers) io.signals.on(ev, fn);
  const removeHandlers = () => {
    for (const [ev, fn] of handlers) io.signals.off(ev, fn);
  };

  try {
    await starting;
  } catch (e) {
    logger.fatal({ err: e }, `startup failed: ${errorMessage(e)}`);
    try {
      await server.stop();
    } catch {
      // best effort: release whatever start() had acquired
    }
    removeHandlers();
    return 1;
  }

  logger.info('ready');
  if (configFile === undefined) {
    const hints = connectHints(config);
    if (hints) logger.info(hints, `to connect: ${hints.discovery} && ${hints.login}`);
  }
  io.onServing?.(server, config);

  const code = await done;
  await reloading.catch(() => {});
  removeHandlers();
  return code;
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

function lunPathsOf(config: EffectiveConfig): string[] {
  return config.targets.flatMap((t) => t.luns.map((l) => l.path));
}
