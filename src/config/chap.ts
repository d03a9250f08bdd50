/**
 * CHAP credentials in the configuration, and reading their secrets.
 *
 * AclEntry.chap and EffectiveConfig.discovery.chap hold a ChapConfig as the config loader
 * validated it: exactly one secret source per credential set (inline `secret`, `secretFile`
 * already resolved to an absolute path, or `secretEnv`). The secret values themselves are read
 * by resolveChapSecrets(), which loadConfigFile() runs (so `check`, start-up and SIGHUP reload
 * all report unreadable or weak secrets as configuration errors) and which the server runs again
 * at start() and reload() to build the keyring that logins use. A rotated secret file or variable
 * therefore takes effect on the next SIGHUP.
 *
 * Rules (RFC 7143 §12.1.3, and what LIO enforces):
 * - a secret has at least MIN_CHAP_SECRET_BYTES bytes (the RFC asks for 96 random bits);
 * - the mutual (target) secret differs from the initiator's secret of the same entry.
 *
 * No message produced here ever contains a secret value.
 */
import { readFile } from 'node:fs/promises';
import type { AclEntry, TargetDefinition } from './types.js';

export interface ChapCredentials {
  username: string;
  /** Secret given inline in the config file. */
  secret?: string;
  /** Absolute path of a file holding the secret (one trailing newline is ignored). */
  secretFile?: string;
  /** Name of an environment variable holding the secret. */
  secretEnv?: string;
}

export interface ChapConfig extends ChapCredentials {
  /** Credentials the target answers with when the initiator asks for mutual CHAP. */
  mutual?: ChapCredentials;
}

/** RFC 7143 §12.1.3: "at least 96 bits" of secret; LIO and open-iscsi users know it as 12 characters. */
export const MIN_CHAP_SECRET_BYTES = 12;

/** One credential set with its secret read. */
export interface ResolvedCredentials {
  readonly username: string;
  readonly secret: Buffer;
}

/** What a login checks against: the initiator's credentials and, for mutual CHAP, the target's. */
export interface ResolvedChap extends ResolvedCredentials {
  readonly mutual?: ResolvedCredentials;
}

/**
 * Resolved secrets, looked up by the ChapConfig object they were read for (so nothing that
 * serialises a config — a log line, `check` — can ever reach them).
 */
export class ChapKeyring {
  constructor(
    private readonly byConfig: WeakMap<ChapConfig, ResolvedChap> = new WeakMap(),
    /** Credentials of discovery sessions; undefined = discovery is open. */
    readonly discovery?: ResolvedChap,
  ) {}

  get(chap: ChapConfig): ResolvedChap | undefined {
    return this.byConfig.get(chap);
  }
}

/** The secret of a credential set. Rejects with a message naming the source (never the secret). */
export async function readChapSecret(cred: ChapCredentials, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (cred.secret !== undefined) return cred.secret;
  if (cred.secretFile !== undefined) {
    let text: string;
    try {
      text = await readFile(cred.secretFile, 'utf8');
    } catch (e) {
      throw new Error(`cannot read CHAP secret file ${cred.secretFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const secret = text.replace(/\r?\n$/, '');
    if (secret === '') throw new Error(`CHAP secret file ${cred.secretFile} is empty`);
    return secret;
  }
  if (cred.secretEnv !== undefined) {
    const secret = env[cred.secretEnv];
    if (secret === undefined || secret === '') throw new Error(`environment variable ${cred.secretEnv} (CHAP secret) is not set`);
    return secret;
  }
  throw new Error(`CHAP credentials for ${cred.username} have no secret`);
}

/** The config field a credential set's secret comes from: "secret", "secretFile" or "secretEnv". */
function sourceField(cred: ChapCredentials): string {
  return cred.secret !== undefined ? 'secret' : cred.secretFile !== undefined ? 'secretFile' : 'secretEnv';
}

function sourceText(cred: ChapCredentials): string {
  if (cred.secret !== undefined) return 'the secret';
  if (cred.secretFile !== undefined) return `the secret in ${cred.secretFile}`;
  return `the secret in $${cred.secretEnv}`;
}

/**
 * Read and check every CHAP secret of `config` (ACL entries of every target, and discovery).
 * Returns the keyring and the problems found, one line each in the config loader's style
 * (`targets[0].acl[1].chap.secretFile: …`). The keyring is only meaningful when there are none.
 */
export async function resolveChapSecrets(
  config: { targets: readonly TargetDefinition[]; discovery?: { chap?: ChapConfig } },
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ keyring: ChapKeyring; issues: string[] }> {
  const issues: string[] = [];
  const byConfig = new WeakMap<ChapConfig, ResolvedChap>();

  const readOne = async (cred: ChapCredentials, where: string): Promise<ResolvedCredentials | undefined> => {
    const at = `${where}.${sourceField(cred)}`;
    let text: string;
    try {
      text = await readChapSecret(cred, env);
    } catch (e) {
      issues.push(`${at}: ${(e as Error).message}`);
      return undefined;
    }
    const secret = Buffer.from(text, 'utf8');
    if (secret.length < MIN_CHAP_SECRET_BYTES) {
      issues.push(
        `${at}: ${sourceText(cred)} is ${secret.length} bytes long; CHAP secrets must be at least ${MIN_CHAP_SECRET_BYTES} bytes ` +
          `(RFC 7143 §12.1.3 asks for 96 random bits); generate one with e.g. "openssl rand -base64 24"`,
      );
      return undefined;
    }
    return { username: cred.username, secret };
  };

  const resolve = async (chap: ChapConfig, where: string): Promise<ResolvedChap | undefined> => {
    const own = await readOne(chap, where);
    const mutual = chap.mutual !== undefined ? await readOne(chap.mutual, `${where}.mutual`) : undefined;
    if (own === undefined || (chap.mutual !== undefined && mutual === undefined)) return undefined;
    if (mutual !== undefined && mutual.secret.equals(own.secret)) {
      issues.push(
        `${where}.mutual.${sourceField(chap.mutual!)}: the mutual (target) secret is the same as the initiator's secret ` +
          `(${where}.${sourceField(chap)}); the iSCSI RFCs forbid using one CHAP secret in both directions, use another one`,
      );
      return undefined;
    }
    const resolved: ResolvedChap = mutual !== undefined ? { ...own, mutual } : own;
    byConfig.set(chap, resolved);
    return resolved;
  };

  let discovery: ResolvedChap | undefined;
  if (config.discovery?.chap !== undefined) discovery = await resolve(config.discovery.chap, 'discovery.chap');
  for (const [ti, target] of config.targets.entries()) {
    for (const [ai, entry] of (target.acl as readonly AclEntry[]).entries()) {
      if (entry.chap !== undefined) await resolve(entry.chap, `targets[${ti}].acl[${ai}].chap`);
    }
  }
  return { keyring: new ChapKeyring(byConfig, discovery), issues };
}
