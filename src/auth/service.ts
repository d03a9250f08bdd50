/**
 * The server's authentication state, as logins see it: the CHAP keyring of the configuration in
 * force (swapped atomically by reload) and the CHAP back-off per initiator name and address (kept across reloads).
 */
import { ChapKeyring, resolveChapSecrets, type ChapConfig, type ResolvedChap } from '../config/chap.js';
import type { AclEntry, EffectiveConfig, IscsiSettings } from '../config/types.js';
import { AuthBackoff, type BackoffSettings } from './backoff.js';

/** Defaults for settings that may be absent from an IscsiSettings built by hand (tests). */
export const AUTH_DEFAULTS = { maxPendingLoginsPerAddress: 16, authBackoffAfter: 5, authBackoffInitial: 1, authBackoffMax: 60 } as const;

export function backoffSettings(s: IscsiSettings): BackoffSettings {
  return {
    after: s.authBackoffAfter ?? AUTH_DEFAULTS.authBackoffAfter,
    initial: s.authBackoffInitial ?? AUTH_DEFAULTS.authBackoffInitial,
    max: s.authBackoffMax ?? AUTH_DEFAULTS.authBackoffMax,
  };
}

/** What an ACL entry or the discovery setting asks of a login. */
export type AuthPolicy = { kind: 'none' } | { kind: 'chap'; creds: ResolvedChap } | { kind: 'unavailable' };

export class AuthService {
  private keyring = new ChapKeyring();
  private discoveryChap: ChapConfig | undefined;
  readonly backoff: AuthBackoff;

  constructor(settings: IscsiSettings) {
    this.backoff = new AuthBackoff(backoffSettings(settings));
  }

  /**
   * Read the secrets of `config`. Throws an Error listing the problems (never a secret); the
   * keyring in force is unchanged until install().
   */
  async prepare(config: Pick<EffectiveConfig, 'targets' | 'discovery'>, env: NodeJS.ProcessEnv = process.env): Promise<ChapKeyring> {
    const { keyring, issues } = await resolveChapSecrets(config, env);
    if (issues.length > 0) throw new Error(`CHAP secrets: ${issues.join('; ')}`);
    return keyring;
  }

  /** Make `keyring` (from prepare()) and the discovery and back-off settings of `config` the ones new logins use. */
  install(keyring: ChapKeyring, config: Pick<EffectiveConfig, 'iscsi' | 'discovery'>): void {
    this.keyring = keyring;
    this.discoveryChap = config.discovery?.chap;
    this.backoff.settings = backoffSettings(config.iscsi);
  }

  /** Policy for a normal session governed by `entry`. */
  forAcl(entry: AclEntry): AuthPolicy {
    if (entry.chap === undefined) return { kind: 'none' };
    const creds = this.keyring.get(entry.chap);
    // Fail closed: an entry that asks for CHAP but whose secret was not read refuses every login.
    return creds === undefined ? { kind: 'unavailable' } : { kind: 'chap', creds };
  }

  /** Policy for discovery sessions. */
  forDiscovery(): AuthPolicy {
    if (this.discoveryChap === undefined) return { kind: 'none' };
    const creds = this.keyring.get(this.discoveryChap);
    return creds === undefined ? { kind: 'unavailable' } : { kind: 'chap', creds };
  }
}
