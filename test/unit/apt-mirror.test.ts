/**
 * The VM and image builds (test/vm/build-image.sh, docker/build.sh) take the Debian mirror from
 * this machine's apt sources through test/vm/lib/apt-mirror.sh: it reads both source formats,
 * and no mirror host is written anywhere in the repository.
 */
import { describe, expect, test } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, run, runOk, tempDir } from '../e2e/harness.js';

const LIB = join(REPO_ROOT, 'test', 'vm', 'lib', 'apt-mirror.sh');

async function aptMirror(root: string, suite: string) {
  return run('bash', ['-c', `. "${LIB}" && apt_mirror "$1"`, 'apt-mirror', suite], { env: { ...process.env, APT_SOURCES_ROOT: root } });
}

/** apt_mirror's answers for each suite (null: none found) with these files under etc/apt. */
async function mirrorsOf(files: Record<string, string>, suites: string[]): Promise<(string | null)[]> {
  const t = tempDir('apt-sources-');
  try {
    mkdirSync(join(t.dir, 'etc', 'apt', 'sources.list.d'), { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(t.dir, 'etc', 'apt', name), text);
    const out: (string | null)[] = [];
    for (const suite of suites) {
      const r = await aptMirror(t.dir, suite);
      out.push(r.code === 0 ? r.stdout.trim() : null);
    }
    return out;
  } finally {
    t.cleanup();
  }
}

describe('the Debian mirror comes from apt\'s sources', () => {
  test('one-line format: options, comments and deb-src skipped, the suite matched', async () => {
    const found = await mirrorsOf({
      'sources.list': [
        '# deb http://commented.invalid/debian bookworm main',
        'deb-src http://src.invalid/debian bookworm main',
        'deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://one.invalid/debian bookworm main',
        'deb http://security.invalid/debian-security bookworm-security main',
      ].join('\n'),
    }, ['bookworm', 'bookworm-security', 'trixie']);
    expect(found).toEqual(['http://one.invalid/debian', 'http://security.invalid/debian-security', null]);
  });

  test('deb822 format: a disabled stanza and other suites skipped', async () => {
    const found = await mirrorsOf({
      'sources.list.d/debian.sources': [
        'Types: deb', 'URIs: http://disabled.invalid/debian', 'Suites: bookworm', 'Components: main', 'Enabled: no', '',
        'Types: deb-src', 'URIs: http://src.invalid/debian', 'Suites: bookworm', 'Components: main', '',
        'Types: deb', 'URIs: http://two.invalid/debian', 'Suites: bookworm bookworm-updates', 'Components: main',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg', '',
      ].join('\n'),
    }, ['bookworm', 'bookworm-updates', 'bookworm-backports']);
    expect(found).toEqual(['http://two.invalid/debian', 'http://two.invalid/debian', null]);
  });

  test('both build scripts use it, and no file in the repository names a Debian mirror host', async () => {
    for (const script of ['test/vm/build-image.sh', 'docker/build.sh']) {
      const text = readFileSync(join(REPO_ROOT, script), 'utf8');
      expect(text, script).toContain('lib/apt-mirror.sh');
      expect(text, script).toMatch(/apt_mirror\b/);
    }
    const files = (await runOk('git', ['ls-files', '-z'], { cwd: REPO_ROOT })).stdout.split('\0').filter(Boolean);
    expect(files.length).toBeGreaterThan(100);
    const named = files.filter((f) => {
      let text: string;
      try {
        text = readFileSync(join(REPO_ROOT, f), 'utf8');
      } catch {
        return false; // listed but not in this checkout (e.g. deleted in the working tree)
      }
      // Hosts under .invalid (RFC 2606) are the fixtures above, which name no mirror.
      const mirrorUrls = [...text.matchAll(/https?:\/\/([^/\s"'`]+)\/debian(-security)?\b/g)].filter((m) => !m[1]!.endsWith('.invalid'));
      return mirrorUrls.length > 0 || /\b[a-z0-9.-]*debian\.(org|net)\b/.test(text);
    });
    expect(named).toEqual([]);
  });
});
