import type { AclEntry } from '../config/types.js';

/**
 * The ACL entry that governs `initiatorName`: an exact match wins over the "*" wildcard.
 * iSCSI names compare case-insensitively (RFC 7143 §4.2.7.1: names are normalised to lower case).
 */
export function findAclEntry(acl: readonly AclEntry[], initiatorName: string): AclEntry | undefined {
  const name = initiatorName.toLowerCase();
  let wildcard: AclEntry | undefined;
  for (const entry of acl) {
    if (entry.initiator === '*') wildcard ??= entry;
    else if (entry.initiator.toLowerCase() === name) return entry;
  }
  return wildcard;
}
