/**
 * `glfs-target check --config FILE`: validate a config file and print it as the config file
 * `serve` accepts (secrets masked). Beyond what loading checks, it looks at the machine the way
 * `serve` would: each LUN file on its gluster volume, each LUN's directory there, each portal
 * free to listen on.
 */
import { stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { assertOnItsVolume, volumeOptionWarnings } from './cluster/volume-options.js';
import { configFileOf, hasInlineSecrets } from './config/config-file-of.js';
import { ConfigError, configWarnings, loadConfigFile, maskSecrets } from './config/load.js';
import { formatHostPort } from './config/portal.js';
import type { EffectiveConfig, PortalConfig } from './config/types.js';
import { lunPathsOf } from './serve.js';

export interface CheckIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Exit code: 0 fine, 1 something serve would refuse on this machine, 2 an invalid config. */
export async function checkCommand(configFile: string, io: CheckIo): Promise<number> {
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
  const errors = [...(await lunProblems(config)), ...(await portalProblems(config))];
  for (const e of errors) io.stderr(`error: ${e}\n`);
  return errors.length > 0 ? 1 : 0;
}

/** What serve would refuse of the LUN files: a directory that is not there, a file off its gluster volume. */
async function lunProblems(config: EffectiveConfig): Promise<string[]> {
  const problems: string[] = [];
  for (const lun of config.targets.flatMap((t) => t.luns)) {
    const dir = path.dirname(lun.path);
    const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
    if (!isDir) {
      problems.push(`LUN ${lun.lun} (${lun.path}): the directory ${dir} does not exist (is the gluster volume mounted?)`);
      continue;
    }
    await assertOnItsVolume(lun.path, lun.volume).catch((e: unknown) => problems.push((e as Error).message));
  }
  return problems;
}

/**
 * Portals another program listens on already. When a server answers on the config's control
 * socket, the portals are its own (a reload keeps them) and are not tried.
 */
async function portalProblems(config: EffectiveConfig): Promise<string[]> {
  if (await answers(config.controlSocket)) return [];
  const problems: string[] = [];
  for (const portal of config.portals) {
    const problem = await bindProblem(portal);
    if (problem !== undefined) problems.push(`portal ${formatHostPort(portal)}: ${problem}`);
  }
  return problems;
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => (probe.destroy(), resolve(true)));
    probe.once('error', () => resolve(false));
  });
}

/** Why `portal` cannot be listened on, or undefined when it can (tried, then closed at once). */
function bindProblem(portal: PortalConfig): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      switch (err.code) {
        case 'EADDRINUSE':
          resolve('the address is in use (another iSCSI target, or a glfs-target whose control socket is not this config\'s)');
          break;
        case 'EADDRNOTAVAIL':
          resolve('no interface of this host has that address');
          break;
        case 'EACCES':
          resolve('permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)');
          break;
        default:
          resolve(err.message);
      }
    });
    server.listen({ host: portal.host, port: portal.port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}
