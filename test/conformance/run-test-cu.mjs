#!/usr/bin/env node
// Runs libiscsi's conformance suite (iscsi-test-cu) against an iSCSI LUN and summarises the result
// as markdown + JSON (passed / skipped / failed counts, failing test names with their first
// message). Plain Node ESM, no build step.
//
// Usage:
//   node test/conformance/run-test-cu.mjs --url iscsi://127.0.0.1:3260/IQN/0 [options]
//   node test/conformance/run-test-cu.mjs --tgt  [options]   # private tgtd, 1 GiB sparse LUN 1
//   node test/conformance/run-test-cu.mjs --glfs [options]   # glfs-target from dist/, 1 GiB LUN 0
//   node test/conformance/run-test-cu.mjs --from-log FILE    # re-summarise a saved log
// --tgt and --glfs also serve a small read-only LUN and imply --multipath and --readonly-url (below).
// Options:
//   --out DIR              write test-cu.log, summary.md, summary.json (and target.log with --glfs) there
//                          (default test/conformance/results/<label>-<UTC stamp>)
//   --label NAME           name used in the report (default: tgt / glfs-target / url)
//   --timeout SEC          kill the suite after SEC seconds (default 1800)
//   --test PATTERN         pass -t PATTERN to iscsi-test-cu (default: everything)
//   --known-failures FILE  list of expected failures (FAMILY.Suite.Test, '#' comments, '*' globs,
//                          a "mode: record|enforce" line); in enforce mode (or with --enforce) any
//                          other failing test makes the exit status 1
//   --multipath            give iscsi-test-cu the URL twice: the second is its "multipath" URL, a
//                          second session (I_T nexus) to the same LUN, which enables the MultipathIO
//                          suite (COMPARE AND WRITE / reset across two nexuses)
//   --readonly-url URL     afterwards run the *.ReadOnly suites against URL (a write-protected LUN)
//                          and let their results replace the main run's (which skip them: the main
//                          LUN is writable)
//   --size SIZE            LUN size for --tgt/--glfs (default 1G)
//   --port N               TCP port for --tgt/--glfs (default: a free one)
//   --quiet                don't echo the markdown summary
// Exit status: 0 = ran to the end (and no unexpected failures when --known-failures is given),
//              1 = unexpected failures, 2 = the suite did not run to the end, 3 = usage/setup error.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { canConnect, freePort } from '../support/ports.mjs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const INIT1 = 'iqn.2007-10.com.example:test-cu-1';
const INIT2 = 'iqn.2007-10.com.example:test-cu-2';

// ------------------------------------------------------------------------------------------------
// Parsing

/** Parses `iscsi-test-cu -l` output into [{family, suite, tests: [...]}] in listing order. */
export function parseListing(text) {
  const suites = [];
  for (const raw of text.split('\n')) {
    const parts = raw.trim().split('.');
    if (parts.length === 2) suites.push({ family: parts[0], suite: parts[1], tests: [] });
    else if (parts.length >= 3) {
      const last = suites[suites.length - 1];
      if (last && last.family === parts[0] && last.suite === parts[1]) last.tests.push(parts.slice(2).join('.'));
    }
  }
  return suites;
}

/** Keeps the listed suites a -t FAMILY[.SUITE[.TEST]] pattern selects ('*' wildcards). */
export function filterListing(listing, pattern) {
  if (!pattern) return listing;
  const [fam, suite] = pattern.split('.');
  const f = globToRegExp(fam || '*');
  const s = globToRegExp(suite || '*');
  return listing.filter((x) => f.test(x.family) && s.test(x.suite));
}

/**
 * Parses the verbose (default) console output of iscsi-test-cu. Suite names repeat across
 * families (ALL, SCSI, iSCSI, LINUX); the listing, which the runner follows in order, supplies
 * the family of each "Suite:" line.
 */
export function parseRun(log, listing = []) {
  const tests = [];
  const suiteErrors = [];
  let ptr = 0;
  let family = '';
  let suite = '';
  let cur = null;
  let summary = null;
  let returnValue = null;
  const finish = () => {
    if (!cur) return;
    const lines = cur.lines;
    // CUnit prints the verdict ("passed"/"FAILED") at the start of a line, right after the test's
    // (indented) messages, or directly after "..." when the test printed nothing. Output from a
    // suite's cleanup may follow it on the same line. Without a trailing newline in the test's
    // output the verdict ends a message line instead.
    let result = null;
    let at = [lines.length, 0]; // where the verdict starts: messages after it belong to the cleanup
    for (let i = 0; i < lines.length; i++) {
      let m;
      if ((m = /^(passed|FAILED)(?=\s|$)/.exec(lines[i]))) { result = m[1]; at = [i, 0]; }
      else if ((m = /(?:\s|\.\.\.)(passed|FAILED)\s*$/.exec(lines[i])) && !/\[(FAILED|SKIPPED)\]/.test(lines[i].slice(m.index))) {
        result = m[1];
        at = [i, m.index];
      }
    }
    const text = lines.join('\n');
    const own = [...lines.slice(0, at[0]), (lines[at[0]] ?? '').slice(0, at[1])].join('\n');
    const skipMsg = /\[SKIPPED\]\s*(.*)/.exec(own);
    const failMsg = /\[FAILED\]\s*(.*)/.exec(own);
    const assertMsg = /^\s+1\.\s+(\S+.*)$/m.exec(text);
    let status;
    if (result === 'FAILED') status = 'failed';
    else if (result === 'passed') status = skipMsg ? 'skipped' : 'passed';
    else status = 'incomplete';
    tests.push({
      name: cur.name,
      status,
      message: (status === 'skipped' ? skipMsg?.[1] : (failMsg?.[1] ?? assertMsg?.[1])) ?? '',
      detail: status === 'failed' ? text.trim().split('\n').slice(-12).join('\n') : undefined,
    });
    cur = null;
  };
  const lines = log.split('\n');
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li];
    let m;
    if ((m = /^Suite: (.+?)\s*$/.exec(line))) {
      finish();
      suite = m[1];
      const idx = listing.findIndex((s, i) => i >= ptr && s.suite === suite);
      if (idx >= 0) { family = listing[idx].family; ptr = idx + 1; } else family = '?';
      continue;
    }
    if ((m = /^\s*Suite (.+?) - init failed|^\s*Suite (.+?) cleanup failed/i.exec(line))) {
      suiteErrors.push(line.trim());
      continue;
    }
    if ((m = /^  Test: (\S+) \.\.\.(.*)$/.exec(line))) {
      finish();
      cur = { name: `${family}.${suite}.${m[1]}`, lines: [m[2]] };
      continue;
    }
    if (/^Run Summary:/.test(line)) {
      finish();
      summary = {};
      for (let j = li + 1; j < Math.min(lines.length, li + 6); j++) {
        const s = /^\s+(suites|tests|asserts)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\S+)/.exec(lines[j]);
        if (s) summary[s[1]] = { total: +s[2], ran: +s[3], passed: s[4] === 'n/a' ? null : +s[4], failed: +s[5], inactive: s[6] === 'n/a' ? null : +s[6] };
      }
      continue;
    }
    if ((m = /^Tests completed with return value: (-?\d+)/.exec(line))) {
      returnValue = +m[1];
      continue;
    }
    if (cur) cur.lines.push(line);
  }
  finish();
  const count = (st) => tests.filter((t) => t.status === st).length;
  return {
    completed: summary !== null && summary.tests !== undefined,
    summary,
    returnValue,
    suiteErrors,
    counts: { total: tests.length, passed: count('passed'), skipped: count('skipped'), failed: count('failed'), incomplete: count('incomplete') },
    tests,
    lastTest: tests.length ? tests[tests.length - 1].name : null,
  };
}

/** Reads a known-failures file: one FAMILY.Suite.Test per line, '#' comments, '*' wildcards. */
export function readKnownFailures(file) {
  return readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter((l) => l && !/^mode\s*:/i.test(l));
}

/** The "mode: record|enforce" directive of a known-failures file (default record). */
export function knownFailuresMode(file) {
  const m = /^\s*mode\s*:\s*(\w+)/im.exec(readFileSync(file, 'utf8'));
  return m && m[1].toLowerCase() === 'enforce' ? 'enforce' : 'record';
}

function globToRegExp(p) {
  return new RegExp('^' + p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
}

/**
 * Replaces the main run's results for the tests a supplementary run (e.g. *.ReadOnly against a
 * write-protected LUN) also ran, and recomputes the counts.
 */
export function mergeRuns(main, extra) {
  const byName = new Map(extra.tests.map((t) => [t.name, t]));
  const tests = main.tests.map((t) => byName.get(t.name) ?? t);
  const count = (st) => tests.filter((t) => t.status === st).length;
  return {
    ...main,
    completed: main.completed && extra.completed,
    suiteErrors: [...main.suiteErrors, ...extra.suiteErrors],
    counts: { total: tests.length, passed: count('passed'), skipped: count('skipped'), failed: count('failed'), incomplete: count('incomplete') },
    tests,
  };
}

/** Splits failures into expected/unexpected and lists known failures that no longer fail. */
export function compareKnown(parsed, known) {
  const res = known.map(globToRegExp);
  const failed = parsed.tests.filter((t) => t.status === 'failed' || t.status === 'incomplete').map((t) => t.name);
  const unexpected = failed.filter((n) => !res.some((r) => r.test(n)));
  const nowPassing = known.filter((k) => !k.includes('*') && parsed.tests.some((t) => t.name === k && (t.status === 'passed' || t.status === 'skipped')));
  return { unexpected, expected: failed.filter((n) => !unexpected.includes(n)), nowPassing };
}

export function toMarkdown(parsed, meta, known) {
  const c = parsed.counts;
  const out = [];
  out.push(`### iscsi-test-cu: ${meta.label}`, '');
  out.push(`- Date: ${meta.date}`);
  out.push(`- Command: \`${meta.command}\``);
  if (meta.versions) out.push(`- Versions: ${meta.versions}`);
  out.push(`- Duration: ${meta.durationSec ?? '?'} s; ran to the end: ${parsed.completed ? 'yes' : `**no** (${meta.stopReason ?? 'no summary'}; last test: ${parsed.lastTest})`}`);
  out.push('');
  out.push('| tests | passed | skipped | failed | incomplete |', '|---:|---:|---:|---:|---:|');
  out.push(`| ${c.total} | ${c.passed} | ${c.skipped} | ${c.failed} | ${c.incomplete} |`, '');
  if (parsed.summary?.tests) {
    const s = parsed.summary.tests;
    out.push(`CUnit summary${meta.extraCommand ? ' (main run)' : ''}: ${s.total} tests, ${s.ran} ran, ${s.passed} passed (skips count as passed), ${s.failed} failed; asserts failed: ${parsed.summary.asserts?.failed ?? '?'}.`, '');
  }
  if (meta.extraCommand) out.push(`Supplementary run (its results replace the main run's for the same tests): \`${meta.extraCommand}\``, '');
  if (parsed.suiteErrors.length) out.push('Suite errors:', ...parsed.suiteErrors.map((e) => `- ${e}`), '');
  const failed = parsed.tests.filter((t) => t.status === 'failed' || t.status === 'incomplete');
  out.push(`#### Failing tests (${failed.length})`, '');
  if (failed.length === 0) out.push('(none)');
  for (const t of failed) out.push(`- \`${t.name}\`${t.status === 'incomplete' ? ' (did not finish)' : ''}${t.message ? ` — ${t.message.replace(/\|/g, '\\|')}` : ''}`);
  out.push('');
  if (known) {
    out.push(`#### Against known failures (${known.listSize} entries, mode: ${known.mode})`, '');
    out.push(`- Unexpected failures: ${known.unexpected.length ? known.unexpected.map((n) => `\`${n}\``).join(', ') : 'none'}`);
    out.push(`- Known failures now passing (prune the list): ${known.nowPassing.length ? known.nowPassing.map((n) => `\`${n}\``).join(', ') : 'none'}`, '');
  }
  const reasons = new Map();
  for (const t of parsed.tests.filter((x) => x.status === 'skipped')) reasons.set(t.message, (reasons.get(t.message) ?? 0) + 1);
  if (reasons.size) {
    out.push('<details><summary>Skip reasons</summary>', '', '| count | reason |', '|---:|---|');
    for (const [r, n] of [...reasons].sort((a, b) => b[1] - a[1])) out.push(`| ${n} | ${r.replace(/\|/g, '\\|')} |`);
    out.push('', '</details>', '');
  }
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------
// Running


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function tryExec(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15000 }).trim(); } catch { return null; }
}

function dpkgVersion(pkg) {
  return tryExec('dpkg-query', ['-W', '-f=${Version}', pkg]);
}

function spawnLogged(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', (code, sig) => r({ code, sig })));
  let gone = false;
  exited.then(() => { gone = true; });
  return { child, exited, log: () => log, gone: () => gone };
}

async function waitPort(port, proc, what) {
  const deadline = Date.now() + 15000;
  while (!(await canConnect(port))) {
    if (proc.gone()) throw new Error(`${what} exited during startup:\n${proc.log()}`);
    if (Date.now() > deadline) throw new Error(`${what} not listening on ${port} after 15 s:\n${proc.log()}`);
    await sleep(100);
  }
}

async function stopProc(proc, graceMs = 10000) {
  if (proc.gone()) return;
  proc.child.kill('SIGTERM');
  const t = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(t);
}

/** tgtd management channels are unix sockets numbered 0..32767; pick one no live tgtd answers on. */
async function freeTgtControlPort(seed) {
  for (let i = 0; i < 100; i++) {
    const n = 1000 + ((seed + i) % 31000);
    try {
      execFileSync('tgtadm', ['-C', String(n), '--lld', 'iscsi', '--op', 'show', '--mode', 'sys'], { stdio: 'pipe', timeout: 5000 });
    } catch {
      return n; // nobody answered: free
    }
  }
  throw new Error('no free tgtd control port');
}

async function startTgt({ port, size, dir }) {
  const file = join(dir, 'lun.img');
  execFileSync('truncate', ['-s', size, file]);
  const iqn = 'iqn.2016-06.org.gluster:test-cu-tgt';
  const ctl = String(await freeTgtControlPort(port));
  const proc = spawnLogged('tgtd', ['-f', '-C', ctl, '--iscsi', `portal=127.0.0.1:${port}`]);
  const adm = (...a) => execFileSync('tgtadm', ['-C', ctl, '--lld', 'iscsi', ...a], { stdio: 'pipe', timeout: 15000 });
  const deadline = Date.now() + 15000;
  for (;;) {
    try { adm('--op', 'show', '--mode', 'sys'); break; } catch (e) {
      if (proc.gone() || Date.now() > deadline) { await stopProc(proc); throw new Error(`tgtd did not start: ${e}\n${proc.log()}`); }
      await sleep(100);
    }
  }
  const stop = async () => {
    // tgtd ignores SIGTERM (and 'delete --mode system' while targets exist); its rdwr store uses pwrite().
    proc.child.kill('SIGKILL');
    await proc.exited;
    for (const f of [`socket.${ctl}`, `socket.${ctl}.lock`]) rmSync(join('/var/run/tgtd', f), { force: true });
  };
  try {
    adm('--op', 'new', '--mode', 'target', '--tid', '1', '-T', iqn);
    adm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', file);
    // LUN 2: write-protected, for the *.ReadOnly suites.
    const roFile = join(dir, 'ro.img');
    execFileSync('truncate', ['-s', '64M', roFile]);
    adm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '2', '-b', roFile);
    adm('--op', 'update', '--mode', 'logicalunit', '--tid', '1', '--lun', '2', '--params', 'readonly=1');
    adm('--op', 'bind', '--mode', 'target', '--tid', '1', '-I', 'ALL');
    await waitPort(port, proc, 'tgtd');
  } catch (e) {
    await stop();
    throw e;
  }
  const v = dpkgVersion('tgt') ?? tryExec('tgtd', ['-V']);
  return { url: `iscsi://127.0.0.1:${port}/${iqn}/1`, readonlyUrl: `iscsi://127.0.0.1:${port}/${iqn}/2`, stop, version: `tgt ${v}`, label: 'tgt' };
}

async function startGlfs({ port, size, dir }) {
  const entry = join(REPO, 'dist', 'cli.js');
  if (!existsSync(entry)) throw new Error(`${entry} missing: run npm run build first`);
  const iqn = 'iqn.2016-06.org.gluster:test-cu';
  const cfg = join(dir, 'config.json');
  const roFile = join(dir, 'ro.img');
  execFileSync('truncate', ['-s', '64M', roFile]);
  writeFileSync(cfg, JSON.stringify({
    portals: [`127.0.0.1:${port}`],
    targets: [{
      iqn,
      luns: [
        { lun: 0, path: join(dir, 'lun0.img'), size, create: true, readOnly: false },
        { lun: 1, path: roFile, readOnly: true },
      ],
      acl: [{ initiator: '*' }],
    }],
    iscsi: { headerDigest: ['None', 'CRC32C'], dataDigest: ['None', 'CRC32C'], immediateData: true, initialR2T: false, maxRecvDataSegmentLength: 262144 },
    logLevel: 'info',
  }, null, 2));
  const proc = spawnLogged(process.execPath, [join(REPO, 'bin', 'glfs-target.js'), 'serve', '--config', cfg], { cwd: REPO });
  await waitPort(port, proc, 'glfs-target');
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  return { url: `iscsi://127.0.0.1:${port}/${iqn}/0`, readonlyUrl: `iscsi://127.0.0.1:${port}/${iqn}/1`, stop: () => stopProc(proc), version: `glfs-target ${pkg.version}`, label: 'glfs-target', log: proc.log };
}

/** Runs iscsi-test-cu with a hard timeout; resolves with the combined output and how it ended. */
/** `multipath`: true gives the URL twice (a second session to the same LUN), a string gives that URL (e.g. another node's portal). */
export function runSuite({ url, timeoutSec = 1800, test, extraArgs = [], multipath = false }) {
  const second = typeof multipath === 'string' ? [multipath] : multipath ? [url] : [];
  const args = ['--dataloss', '-i', INIT1, '--initiator-name-2', INIT2, ...(test ? ['-t', test] : []), ...extraArgs, url, ...second];
  return new Promise((res) => {
    const started = Date.now();
    const child = spawn('iscsi-test-cu', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    let stopReason = null;
    const t = setTimeout(() => {
      stopReason = `timed out after ${timeoutSec} s`;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 3000).unref();
    }, timeoutSec * 1000);
    child.on('error', (e) => { stopReason = `spawn error: ${e.message}`; });
    child.on('close', (code, signal) => {
      clearTimeout(t);
      if (!stopReason && signal) stopReason = `killed by ${signal}`;
      res({ log: out, code, signal, stopReason, durationSec: Math.round((Date.now() - started) / 100) / 10, command: ['iscsi-test-cu', ...args].join(' ') });
    });
  });
}

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    switch (a) {
      case '--url': o.url = val(); break;
      case '--tgt': o.tgt = true; break;
      case '--glfs': o.glfs = true; break;
      case '--from-log': o.fromLog = val(); break;
      case '--out': o.out = val(); break;
      case '--label': o.label = val(); break;
      case '--timeout': o.timeout = Number(val()); break;
      case '--test': o.test = val(); break;
      case '--known-failures': o.known = val(); break;
      case '--size': o.size = val(); break;
      case '--multipath': o.multipath = true; break;
      case '--readonly-url': o.readonlyUrl = val(); break;
      case '--port': o.port = Number(val()); break;
      case '--quiet': o.quiet = true; break;
      case '--enforce': o.enforce = true; break;
      case '-h': case '--help': o.help = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return o;
}

async function main() {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(String(e.message)); return 3; }
  if (o.help || [o.url, o.tgt, o.glfs, o.fromLog].filter(Boolean).length !== 1) {
    console.error('usage: run-test-cu.mjs (--url URL | --tgt | --glfs | --from-log FILE) [--out DIR] [--label NAME] [--timeout SEC] [--test PATTERN] [--known-failures FILE [--enforce]] [--multipath] [--readonly-url URL] [--size 1G] [--port N] [--quiet]');
    return o.help ? 0 : 3;
  }
  const listing = filterListing(parseListing(tryExec('iscsi-test-cu', ['-l']) ?? ''), o.test);
  const date = new Date().toISOString();
  const libiscsi = `libiscsi-bin ${dpkgVersion('libiscsi-bin') ?? '?'}`;
  let runRes;
  let extraRes = null;
  let label = o.label;
  let versions = libiscsi;
  let targetLog = '';
  if (o.fromLog) {
    // A log written by this script may carry the supplementary *.ReadOnly run after a marker line.
    const [main, marker, extra] = readFileSync(o.fromLog, 'utf8').split(/\n\n# ---- supplementary run: (.*)\n/);
    runRes = { log: main, command: `(from log ${o.fromLog})`, durationSec: null, stopReason: null };
    if (extra !== undefined) extraRes = { log: extra, command: marker };
    label ??= o.fromLog;
  } else {
    let target = null;
    let dir = null;
    try {
      if (o.tgt || o.glfs) {
        dir = mkdtempSync(join(tmpdir(), 'test-cu-'));
        const port = o.port ?? (await freePort());
        target = await (o.tgt ? startTgt : startGlfs)({ port, size: o.size ?? '1G', dir });
        versions = `${target.version}; ${libiscsi}`;
        label ??= target.label;
      }
      const url = target ? target.url : o.url;
      const multipath = o.multipath || target !== null;
      const readonlyUrl = o.readonlyUrl ?? target?.readonlyUrl;
      label ??= url;
      console.error(`[test-cu] running against ${url}${multipath ? ' (and again as the multipath URL)' : ''} (timeout ${o.timeout ?? 1800} s)`);
      runRes = await runSuite({ url, timeoutSec: o.timeout ?? 1800, test: o.test, multipath });
      if (readonlyUrl && filterListing(listing, o.test).some((x) => x.suite === 'ReadOnly')) {
        console.error(`[test-cu] *.ReadOnly against the write-protected ${readonlyUrl}`);
        extraRes = await runSuite({ url: readonlyUrl, timeoutSec: 300, test: '*.ReadOnly' });
      }
    } catch (e) {
      console.error(`[test-cu] setup failed: ${e.stack ?? e}`);
      return 3;
    } finally {
      if (target) await target.stop();
      targetLog = target?.log?.() ?? '';
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }
  let parsed = parseRun(runRes.log, listing);
  if (extraRes) parsed = mergeRuns(parsed, parseRun(extraRes.log, filterListing(listing, '*.ReadOnly')));
  let known;
  if (o.known) {
    const list = readKnownFailures(o.known);
    known = { ...compareKnown(parsed, list), listSize: list.length, mode: o.enforce ? 'enforce' : knownFailuresMode(o.known) };
  }
  const meta = { label, date, command: runRes.command, versions, durationSec: runRes.durationSec, stopReason: runRes.stopReason, ...(extraRes ? { extraCommand: extraRes.command } : {}) };
  const md = toMarkdown(parsed, meta, known);
  const outDir = o.out ?? join(HERE, 'results', `${String(label).replace(/[^\w.-]+/g, '_')}-${date.replace(/[:.]/g, '-')}`);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'test-cu.log'), runRes.log + (extraRes ? `\n\n# ---- supplementary run: ${extraRes.command}\n${extraRes.log}` : ''));
  if (targetLog) writeFileSync(join(outDir, 'target.log'), targetLog);
  writeFileSync(join(outDir, 'summary.md'), md + '\n');
  writeFileSync(join(outDir, 'summary.json'), JSON.stringify({ meta, ...parsed, known: known ?? null }, null, 2) + '\n');
  if (!o.quiet) console.log(md);
  console.error(`[test-cu] results in ${outDir}`);
  if (!parsed.completed) return 2;
  if (known && known.mode === 'enforce' && known.unexpected.length > 0) return 1;
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => { process.exitCode = code; }, (e) => { console.error(e); process.exitCode = 3; });
}
