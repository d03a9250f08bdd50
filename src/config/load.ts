/**
 * Config file (JSON) → EffectiveConfig, validated once:
 *   config/json.ts          the text: syntax errors and duplicate properties, with line:column
 *   config/schema.ts        each field: type, range, default, its wording when wrong
 *   config/cross-checks.ts  rules between fields (unique names, paths, CHAP secret sources…)
 *   config/derive.ts        the EffectiveConfig: derived identifiers, resolved paths
 *   config/messages.ts      one line per problem: field path, what is wrong, the fix
 * Every problem is collected (not just the first). Unknown fields are errors, to catch typos.
 *
 * - acl omitted = any initiator (configWarnings() reports it); acl [] = nobody.
 * - CHAP: loadConfigFile() reads every secret and refuses ones shorter than 12 bytes and a mutual
 *   secret equal to the initiator's (config/chap.ts); parseConfig() checks only the shape.
 *   Secret values never appear in messages.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveChapSecrets } from './chap.js';
import { crossCheck } from './cross-checks.js';
import { deriveEffectiveConfig, type ParseOptions } from './derive.js';
import { parseJsonText } from './json.js';
import { configIssues, fieldMessage, formatIssue, formatPath } from './messages.js';
import { DEFAULT_ISCSI_PORT, isLoopbackHost } from './portal.js';
import { ConfigFileSchema } from './schema.js';
import type { EffectiveConfig } from './types.js';

// The loader's public API also includes these, defined where they belong.
export { DEFAULT_ISCSI_SETTINGS } from './schema.js';
export { deriveLunIdentity, type ParseOptions } from './derive.js';

/** IQN of the embedded default target (no config file). */
export const DEFAULT_TARGET_IQN = 'iqn.2016-06.org.gluster:glfs-target';
/** Size of the embedded default LUN file (sparse). */
export const DEFAULT_LUN_SIZE = 2 ** 30;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly issues: string[],
    message?: string,
  ) {
    super(message ?? `invalid configuration:\n  ${issues.join('\n  ')}`);
  }
}

/**
 * Validate a parsed JSON document and apply defaults. Relative paths are resolved against
 * `baseDir` (the config file's directory). Throws ConfigError listing every problem.
 */
export function parseConfig(json: unknown, baseDir: string, opts: ParseOptions = {}): EffectiveConfig {
  return parseWithExtraIssues(json, baseDir, opts, []);
}

function parseWithExtraIssues(json: unknown, baseDir: string, opts: ParseOptions, extra: string[]): EffectiveConfig {
  baseDir = path.resolve(opts.cwd ?? process.cwd(), baseDir);
  const result = ConfigFileSchema.safeParse(json, { error: fieldMessage });
  const fieldIssues = result.success ? [] : configIssues(result.error.issues, ConfigFileSchema);
  const crossIssues = isObj(json) ? crossCheck(json, fieldIssues, baseDir) : [];
  const issues = [...new Set([...extra, ...[...fieldIssues, ...crossIssues].map(formatIssue)])];
  if (issues.length > 0 || !result.success) throw new ConfigError(issues);
  return deriveEffectiveConfig(result.data, baseDir, opts);
}

/** Read, parse and validate a config file. Throws ConfigError (also for unreadable files and JSON syntax errors). */
export async function loadConfigFile(file: string, opts: ParseOptions = {}): Promise<EffectiveConfig> {
  const abs = path.resolve(opts.cwd ?? process.cwd(), file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EACCES'
          ? 'permission denied'
          : err.code === 'EISDIR'
            ? 'is a directory, not a file'
            : err.message;
    throw new ConfigError([`${file}: cannot read the config file: ${why}`]);
  }
  const parsed = parseJsonText(text);
  if (parsed.syntaxError) {
    const { line, column, message } = parsed.syntaxError;
    throw new ConfigError([`${file}:${line}:${column}: invalid JSON: ${message}`]);
  }
  const dupIssues = parsed.duplicateKeys.map(
    (d) => `${formatPath(d.path)}: defined twice (second time at ${file}:${d.line}:${d.column}); JSON keeps only the last one, remove one`,
  );
  const config = parseWithExtraIssues(parsed.value, path.dirname(abs), opts, dupIssues);
  // CHAP secrets (inline, files, variables) are read and checked here, so that `check`, start-up
  // and SIGHUP reload refuse a file whose secrets are missing or too short.
  const { issues } = await resolveChapSecrets(config, opts.env ?? process.env);
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/**
 * The configuration used when no file is given: one target DEFAULT_TARGET_IQN with LUN 0 a
 * sparse 1 GiB file <dataDir>/lun0.img, any initiator, listening on 127.0.0.1 only.
 * dataDir defaults to $GLFS_TARGET_DATA_DIR or ./data (relative to the working directory).
 */
export function embeddedDefaultConfig(opts: { dataDir?: string; port?: number } & ParseOptions = {}): EffectiveConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const dataDir = path.resolve(cwd, opts.dataDir ?? env.GLFS_TARGET_DATA_DIR ?? 'data');
  return parseConfig(
    {
      portals: [`127.0.0.1:${opts.port ?? DEFAULT_ISCSI_PORT}`],
      targets: [{ iqn: DEFAULT_TARGET_IQN, luns: [{ lun: 0, path: 'lun0.img', size: DEFAULT_LUN_SIZE, create: true }], acl: [{ initiator: '*' }] }],
      dataDir,
      controlSocket: 'control.sock',
    },
    dataDir,
    opts,
  );
}

/**
 * Things worth a warning in a valid configuration (the server/CLI logs them): targets open to
 * any initiator without CHAP on a non-loopback portal, and targets nobody may log in to.
 */
export function configWarnings(config: EffectiveConfig): string[] {
  const warnings: string[] = [];
  const exposed = config.portals.some((p) => !isLoopbackHost(p.host));
  config.targets.forEach((t, i) => {
    if (t.acl.length === 0) {
      warnings.push(`targets[${i}] ${t.iqn}: acl is empty, so no initiator can log in`);
    } else if (exposed && t.acl.some((a) => a.initiator === '*' && a.chap === undefined)) {
      warnings.push(
        `targets[${i}] ${t.iqn}: any initiator may log in without authentication (acl allows "*"); list initiator names in targets[${i}].acl or add CHAP`,
      );
    }
  });
  return warnings;
}

/** Deep copy with every secret value replaced by "***" (for printing or logging a config). */
export function maskSecrets<T>(value: T): T {
  type Obj = Record<string, unknown>;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (isObj(v)) {
      const out: Obj = {};
      for (const [k, x] of Object.entries(v)) {
        out[k] = x !== undefined && /^(secret|password|CHAP_[RC])$/i.test(k) ? '***' : walk(x);
      }
      return out;
    }
    return v;
  };
  return walk(value) as T;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
