/**
 * `glfs-target serve`: load the configuration, start the server with its control socket and
 * metrics listener, and run until SIGTERM/SIGINT. SIGHUP — or `glfs-target reload` through the
 * control socket — reloads the config file (src/iscsi/target-reload.ts says what may change).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { CliIo, ServerLike, ServerModule } from './cli.js';
import { ConfigError, configWarnings, embeddedDefaultConfig, loadConfigFile } from './config/load.js';
import { volumeOptionWarnings } from './cluster/volume-options.js';
import type { LogLevel } from './config/schema.js';
import { formatHostPort, isWildcardHost } from './config/portal.js';
import type { EffectiveConfig } from './config/types.js';
import { createLogger, type LogFormat } from './log.js';
import type { ReloadOutcome } from './iscsi/target-reload.js';
import type { Operations, OperationsContext } from './ops/operations.js';

export interface ServeArgs {
  config?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  dataDir?: string;
  port?: number;
}


/** A server's reload() answer: the changes needing a restart, or a ReloadOutcome. */
function reloadOutcome(answer: unknown): ReloadOutcome {
  if (Array.isArray(answer)) return { changed: [], needRestart: answer.map(String) };
  const o = answer as Partial<ReloadOutcome> | undefined;
  return { changed: o?.changed ?? [], needRestart: o?.needRestart ?? [] };
}

async function loadServeConfig(args: ServeArgs, io: CliIo): Promise<EffectiveConfig> {
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

export async function serve(args: ServeArgs, io: CliIo, version: string): Promise<number> {
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

  let reloading: Promise<unknown> = Promise.resolve();
  /** Reload the config file; rejects (after logging why) when nothing changed because it could not. */
  const reload = async (trigger: string): Promise<ReloadOutcome> => {
    if (stopping) throw new Error('the server is stopping');
    if (configFile === undefined) {
      logger.warn(`${trigger}, but the server runs the built-in default configuration: nothing to reload`);
      throw new Error('the server runs the built-in default configuration (no --config): nothing to reload');
    }
    logger.info({ configFile }, `${trigger}; reloading the configuration`);
    let next: EffectiveConfig;
    try {
      next = await loadServeConfig(args, io);
    } catch (e) {
      const issues = e instanceof ConfigError ? e.issues : [errorMessage(e)];
      logger.error({ configFile, issues }, `reload refused, keeping the current configuration: ${issues.join('; ')}`);
      throw new Error(`reload refused, keeping the current configuration: ${issues.join('; ')}`);
    }
    if (typeof server.reload !== 'function') {
      logger.warn('this server cannot reload its configuration; restart it to apply the changes');
      throw new Error('this server cannot reload its configuration; restart it to apply the changes');
    }
    for (const w of configWarnings(next)) logger.warn(w);
    let outcome: ReloadOutcome;
    try {
      outcome = reloadOutcome(await server.reload(next));
    } catch (e) {
      logger.error({ err: e }, `reload failed, keeping the current configuration: ${errorMessage(e)}`);
      throw new Error(`reload failed, keeping the current configuration: ${errorMessage(e)}`);
    }
    config = next;
    logger.level = next.logLevel;
    if (outcome.needRestart.length > 0) {
      logger.warn({ needRestart: outcome.needRestart }, `configuration reloaded, but these changes take effect only after a restart: ${outcome.needRestart.join(', ')}`);
    } else {
      logger.info('configuration reloaded');
    }
    return outcome;
  };
  /** One reload at a time, in the order asked. */
  const queueReload = (trigger: string): Promise<ReloadOutcome> => {
    const run = reloading.then(() => reload(trigger));
    reloading = run.catch(() => undefined);
    return run;
  };
  operationsContext.reload = () => queueReload('reload asked through the control socket');
  const onSighup = () => {
    queueReload('SIGHUP received').catch(() => undefined); // logged by reload
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


export function lunPathsOf(config: EffectiveConfig): string[] {
  return config.targets.flatMap((t) => t.luns.map((l) => l.path));
}
