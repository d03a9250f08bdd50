import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import type { LunStateDir } from './state-dir.js';

/** VPD 80h unit serial number and VPD 83h NAA designator of a logical unit. */
export interface LunIdentity {
  readonly serial: string;
  /** 32 hex digits, NAA 6 (IEEE Registered Extended). */
  readonly naa: string;
}

interface StoredIdentity extends LunIdentity {
  readonly version: 1;
  /** Inode of the LUN file it belongs to (gluster reports the same one on every client). */
  readonly ino: number;
}

/** IEEE company ID of derived NAA designators (see config: 02-6C-66, locally administered). */
const NAA_COMPANY_ID = '026c66';

/** A fresh identity: NAA 6 with 100 random bits of vendor specific identifier. */
export function randomIdentity(): LunIdentity {
  const hex = randomBytes(16).toString('hex');
  return { naa: `6${NAA_COMPANY_ID}${hex.slice(0, 25)}`, serial: `glfs${hex.slice(25, 31)}${hex.slice(0, 6)}` };
}

export interface SettledIdentity {
  readonly identity: LunIdentity;
  /** How it came about: read from the volume, `proposed` stored now, or a fresh one (`proposed` belongs to another file). */
  readonly origin: 'stored' | 'adopted' | 'fresh';
}

/**
 * The identity of the LUN file, the same on every server that serves it: stored with the file on
 * the volume (`identity.json` in its state directory), so it follows the file, not the
 * configuration. The first time, `proposed` (the configured or formerly derived identity, which
 * initiators may already know) is stored — unless another file in the same directory already
 * holds that NAA or serial (a claim in `<dir>/.glfs-target-identities/`), in which case a fresh
 * one is made: two different files never share an identity, whatever the configuration says.
 */
export async function settleIdentity(state: LunStateDir, proposed: LunIdentity): Promise<SettledIdentity> {
  const ino = (await fs.promises.stat(state.lunPath)).ino;
  return state.withLock('identity', async () => {
    const stored = await state.readJson<StoredIdentity>('identity.json');
    if (stored !== undefined) {
      if (stored.version !== 1 || !/^6[0-9a-f]{31}$/.test(stored.naa) || typeof stored.serial !== 'string') {
        throw new Error(`${state.path('identity.json')}: not a valid identity record`);
      }
      return { identity: { serial: stored.serial, naa: stored.naa }, origin: 'stored' };
    }
    const claims = join(state.lunDirectory, '.glfs-target-identities');
    await fs.promises.mkdir(claims, { recursive: true });
    const taken = async (key: string): Promise<boolean> => {
      const owner = await readClaim(join(claims, key));
      if (owner === undefined || owner.ino === ino) return false;
      // Held by a file that still exists under that name with that inode.
      const st = await fs.promises.stat(join(state.lunDirectory, owner.file)).catch(() => undefined);
      return st !== undefined && st.ino === owner.ino;
    };
    const proposedTaken = (await taken(`naa-${proposed.naa.toLowerCase()}`)) || (await taken(`serial-${hexOf(proposed.serial)}`));
    const identity = proposedTaken ? randomIdentity() : { serial: proposed.serial, naa: proposed.naa.toLowerCase() };
    const claim = Buffer.from(JSON.stringify({ file: state.lunFileName, ino }) + '\n');
    await fs.promises.writeFile(join(claims, `naa-${identity.naa}`), claim);
    await fs.promises.writeFile(join(claims, `serial-${hexOf(identity.serial)}`), claim);
    const record: StoredIdentity = { version: 1, serial: identity.serial, naa: identity.naa, ino };
    await state.writeJson('identity.json', record, true);
    return { identity, origin: proposedTaken ? 'fresh' : 'adopted' };
  });
}

async function readClaim(path: string): Promise<{ file: string; ino: number } | undefined> {
  try {
    const c = JSON.parse(await fs.promises.readFile(path, 'utf8')) as { file?: unknown; ino?: unknown };
    return typeof c.file === 'string' && typeof c.ino === 'number' ? { file: c.file, ino: c.ino } : undefined;
  } catch {
    return undefined;
  }
}

/** A serial number as a file-name-safe key. */
function hexOf(serial: string): string {
  return Buffer.from(serial, 'latin1').toString('hex');
}
