/**
 * CHAP settings of an ACL entry as the config loader validates them (AclEntry.chap holds a
 * ChapConfig). Exactly one secret source is set per credential set; `secretFile` is already
 * resolved to an absolute path. Secrets are not read at load time: the authentication code
 * calls readChapSecret() when it needs one (so a rotated file or variable is picked up on reload).
 */
import { readFile } from 'node:fs/promises';

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
