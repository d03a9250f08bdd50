import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectHints, packageVersion, runCli, type CliIo, type ServerLike, type ServerModule } from '../../src/cli.js';
import type { EffectiveConfig } from '../../src/config/types.js';
import { embeddedDefaultConfig } from '../../src/config/load.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'glfs-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Captured {
  stdout: string;
  stderr: string;
  logs: Array<Record<string, unknown>>;
  exits: number[];
  signals: EventEmitter;
}

function harness(overrides: Partial<CliIo> = {}): { io: Partial<CliIo>; out: Captured } {
  const out: Captured = { stdout: '', stderr: '', logs: [], exits: [], signals: new EventEmitter() };
  const io: Partial<CliIo> = {
    stdout: (t) => void (out.stdout += t),
    stderr: (t) => void (out.stderr += t),
    env: {},
    cwd: dir,
    stdoutIsTerminal: false,
    signals: out.signals,
    exit: (code) => void out.exits.push(code),
    logDestination: { write: (line: string) => void out.logs.push(JSON.parse(line) as Record<string, unknown>) },
    loadServer: () => Promise.reject(new Error('no server in this test')),
    ...overrides,
  };
  return { io, out };
}

class FakeServer implements ServerLike {
  static last: FakeServer | undefined;
  static failStart: Error | undefined;
  static failReload: Error | undefined;
  events: string[] = [];
  reloads: EffectiveConfig[] = [];
  stopGate: Promise<void> = Promise.resolve();
  constructor(
    readonly config: EffectiveConfig,
    readonly logger: unknown,
  ) {
    FakeServer.last = this;
  }
  async start() {
    this.events.push('start');
    if (FakeServer.failStart) throw FakeServer.failStart;
  }
  async stop() {
    this.events.push('stop');
    await this.stopGate;
  }
  reload(config: EffectiveConfig): string[] {
    this.events.push('reload');
    if (FakeServer.failReload) throw FakeServer.failReload;
    this.reloads.push(config);
    return config.iscsi.cmdWindow === 64 ? ['portals'] : [];
  }
}
class NoReloadServer extends FakeServer {
  declare reload: never;
  constructor(config: EffectiveConfig, logger: unknown) {
    super(config, logger);
    Object.defineProperty(this, 'reload', { value: undefined });
  }
}
const fakeModule = (cls: typeof FakeServer = FakeServer): (() => Promise<ServerModule>) => () => Promise.resolve({ IscsiServer: cls });

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function writeConfig(name: string, json: unknown): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, typeof json === 'string' ? json : JSON.stringify(json, null, 2));
  return file;
}

const validConfig = (extra: Record<string, unknown> = {}) => ({
  portals: ['10.1.2.3:3260'],
  targets: [
    {
      iqn: 'iqn.2016-06.org.gluster:node1',
      luns: [{ lun: 0, path: 'lun0.img', size: '1G' }],
      acl: [{ initiator: 'iqn.1994-05.com.redhat:abc', chap: { username: 'u', secret: 'hunter2hunter2' } }, { initiator: '*' }],
    },
  ],
  ...extra,
});

describe('general options', () => {
  it('--version prints the package version', async () => {
    const { io, out } = harness();
    expect(await runCli(['--version'], io)).toBe(0);
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(out.stdout).toBe(`${pkg.version}\n`);
    expect(packageVersion()).toBe(pkg.version);
  });

  it('--help lists the commands', async () => {
    const { io, out } = harness();
    expect(await runCli(['--help'], io)).toBe(0);
    expect(out.stdout).toContain('serve');
    expect(out.stdout).toContain('check');
    const sub = harness();
    expect(await runCli(['serve', '--help'], sub.io)).toBe(0);
    expect(sub.out.stdout).toContain('--data-dir');
  });

  it('--help points to the config reference, which exists', async () => {
    const { io, out } = harness();
    expect(await runCli(['--help'], io)).toBe(0);
    expect(out.stdout).toContain('README.md, section "Configuration"');
    expect(out.stdout).toContain('"glfs-target schema"');
    const schemaPath = /(\S+target\.schema\.json)/.exec(out.stdout.replace(/\n\s*/g, ' '))![1]!;
    expect(JSON.parse(await readFile(schemaPath, 'utf8'))).toMatchObject({ title: 'glfs-target configuration' });
  });

  it('completion prints a shell completion script, and the completions of a partial command line', async () => {
    const script = harness();
    expect(await runCli(['completion'], script.io)).toBe(0);
    expect(script.out.stdout).toContain('###-begin-glfs-target-completions-###');
    expect(script.out.stdout).toContain('--get-yargs-completions');
    const words = harness();
    expect(await runCli(['--get-yargs-completions', 'glfs-target', 'serve', '--log-f'], words.io)).toBe(0);
    expect(words.out.stdout.split('\n')).toContain('--log-format');
    const values = harness();
    expect(await runCli(['--get-yargs-completions', 'glfs-target', 'serve', '--log-format', ''], values.io)).toBe(0);
    expect(values.out.stdout.split('\n')).toEqual(expect.arrayContaining(['pretty', 'json']));
  });

  it.each([[[]], [['bogus']], [['check']], [['serve', '--nope']], [['serve', '--log-level', 'loud']]])('usage error %j → exit 2', async (argv) => {
    const { io, out } = harness();
    expect(await runCli(argv, io)).toBe(2);
    expect(out.stderr).toContain('glfs-target --help');
    expect(out.stdout).toBe('');
  });

  it('serve --port with --config is refused; --port must be valid', async () => {
    const { io, out } = harness();
    expect(await runCli(['serve', '--config', 'x.json', '--port', '3261'], io)).toBe(2);
    expect(out.stderr).toMatch(/--port applies only to the built-in default/);
    const h2 = harness();
    expect(await runCli(['serve', '--port', '70000'], h2.io)).toBe(2);
    expect(h2.out.stderr).toMatch(/--port must be an integer/);
  });
});

describe('check', () => {
  it('prints the effective config with secrets masked', async () => {
    const file = await writeConfig('good.json', validConfig({ portals: ['0.0.0.0:3261'] }));
    const { io, out } = harness();
    expect(await runCli(['check', '--config', file], io)).toBe(0);
    const printed = JSON.parse(out.stdout) as EffectiveConfig;
    expect(printed.targets[0]!.luns[0]!.path).toBe(path.join(dir, 'lun0.img'));
    expect(printed.targets[0]!.acl[0]!.chap).toEqual({ username: 'u', secret: '***' });
    expect(out.stdout).not.toContain('hunter2');
    expect(out.stderr).toMatch(/^warning: targets\[0\] iqn\.2016-06\.org\.gluster:node1: any initiator may log in/);
  });

  it('prints a config file that serve and check accept, meaning the same configuration', async () => {
    await writeFile(path.join(dir, 'chap.secret'), 'hunter2hunter2\n');
    const file = await writeConfig('roundtrip.json', {
      portals: ['127.0.0.1:3261', { address: '[::1]:3262', advertise: '10.0.2.100', tpgt: 7 }],
      targets: [{
        iqn: 'iqn.2016-06.org.gluster:node1', alias: 'store',
        luns: [{ lun: 0, path: 'lun0.img', size: '1G', create: true }, { lun: 3, path: 'lun3.img', readOnly: true, blockSize: 4096 }],
        acl: [{ initiator: 'iqn.1994-05.com.redhat:abc', chap: { username: 'u', secretFile: 'chap.secret' } }],
      }],
      discovery: { chap: { username: 'd', secretEnv: 'DISC_SECRET' } },
      iscsi: { cmdWindow: 64 },
      metrics: {},
      controlSocket: 'ctl.sock',
    });
    const env = { DISC_SECRET: 'discovery-secret-1' };
    const first = harness({ env });
    expect(await runCli(['check', '--config', file], first.io)).toBe(0);
    const printed = JSON.parse(first.out.stdout) as Record<string, any>;
    // The file format's names, not the effective config's (sizeBytes, host/port).
    expect(printed.targets[0].luns[0].size).toBe(2 ** 30);
    expect(first.out.stdout).not.toMatch(/sizeBytes|"host"|"port"/);
    expect(printed.portals).toEqual(['127.0.0.1:3261', { address: '[::1]:3262', advertise: '10.0.2.100:3262', tpgt: 7 }]);
    expect(printed.metrics).toEqual({ address: '127.0.0.1:9260' });
    expect(printed.controlSocket).toBe(path.join(dir, 'ctl.sock'));

    // check accepts its own output, and prints it unchanged.
    const again = await writeConfig('roundtrip-out.json', first.out.stdout);
    const second = harness({ env });
    expect(await runCli(['check', '--config', again], second.io)).toBe(0);
    expect(second.out.stdout).toBe(first.out.stdout);

    // serve runs it as the same configuration as the original file.
    const served: EffectiveConfig[] = [];
    for (const f of [file, again]) {
      const h = harness({ env, loadServer: fakeModule(), onServing: () => h.out.signals.emit('SIGTERM') });
      expect(await runCli(['serve', '--config', f], h.io), JSON.stringify(h.out.logs)).toBe(0);
      served.push(FakeServer.last!.config);
    }
    expect(served[1]).toEqual(served[0]);
  });

  it('says that masked inline secrets must be put back', async () => {
    const file = await writeConfig('inline.json', validConfig({ portals: ['0.0.0.0:3261'] }));
    const { io, out } = harness();
    expect(await runCli(['check', '--config', file], io)).toBe(0);
    expect(out.stderr).toMatch(/inline CHAP secrets are printed as "\*\*\*"/);
  });

  it('prints each issue on its own line and exits 2', async () => {
    const file = await writeConfig('bad.json', {
      targets: [{ iqn: 'foo', luns: [{ lun: 0, path: '/a', size: '8X' }] }],
    });
    const { io, out } = harness();
    expect(await runCli(['check', '-c', file], io)).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr.split('\n')).toEqual([
      'targets[0].iqn: "foo" is not an iSCSI name; use e.g. "iqn.2016-06.org.gluster:node1"',
      'targets[0].luns[0].size: "8X" is not a size; use e.g. "8G"',
      '',
    ]);
  });

  it('reports JSON syntax errors with line and column, relative to the given path', async () => {
    await writeConfig('syntax.json', '{\n  "targets": [\n}');
    const { io, out } = harness();
    expect(await runCli(['check', '--config', 'syntax.json'], io)).toBe(2);
    expect(out.stderr).toBe('syntax.json:3:1: invalid JSON: unexpected "}"\n');
  });
});

describe('serve', () => {
  it('embedded default: creates the data dir, starts, logs how to connect, stops on SIGTERM', async () => {
    const dataDir = path.join(dir, 'embedded', 'data');
    const { io, out } = harness({
      loadServer: fakeModule(),
      onServing: () => out.signals.emit('SIGTERM'),
    });
    const code = await runCli(['serve', '--data-dir', dataDir, '--port', '3299', '--log-level', 'debug'], io);
    expect(code).toBe(0);
    expect((await stat(dataDir)).isDirectory()).toBe(true);
    const server = FakeServer.last!;
    expect(server.events).toEqual(['start', 'stop']);
    expect(server.config.portals).toEqual([{ host: '127.0.0.1', port: 3299, tpgt: 1 }]);
    expect(server.config.logLevel).toBe('debug');
    expect(server.config.targets[0]!.luns[0]!.path).toBe(path.join(dataDir, 'lun0.img'));
    const msgs = out.logs.map((l) => l.msg);
    expect(msgs).toContain(
      'to connect: iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3299 && iscsiadm -m node -T iqn.2016-06.org.gluster:glfs-target -p 127.0.0.1:3299 --login',
    );
    expect(msgs).toContain('SIGTERM received; shutting down');
    expect(msgs.at(-1)).toBe('stopped');
    expect(out.logs.every((l) => typeof l.level === 'string')).toBe(true);
    expect(out.signals.eventNames()).toEqual([]); // handlers removed
  });

  it('logs readable lines when stdout is a terminal, JSON when not, either when --log-format says so', async () => {
    const serveOnce = async (argv: string[], terminal: boolean): Promise<string[]> => {
      const lines: string[] = [];
      const h = harness({
        stdoutIsTerminal: terminal, loadServer: fakeModule(), onServing: () => h.out.signals.emit('SIGTERM'),
        logDestination: { write: (line: string) => void lines.push(line) },
      });
      expect(await runCli(['serve', '--data-dir', path.join(dir, 'fmt'), ...argv], h.io)).toBe(0);
      return lines;
    };
    const isPretty = (l: string) => /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] (\x1b\[\d+m)?INFO(\x1b\[\d+m)?: /.test(l);
    const onTerminal = await serveOnce([], true);
    expect(onTerminal.some((l) => isPretty(l) && l.includes('glfs-target') && l.includes('starting'))).toBe(true);
    expect(onTerminal.every((l) => !l.startsWith('{'))).toBe(true);
    for (const lines of [await serveOnce([], false), await serveOnce(['--log-format', 'json'], true)]) {
      expect(lines.length).toBeGreaterThan(2);
      for (const l of lines) expect(JSON.parse(l)).toMatchObject({ level: expect.any(String), msg: expect.any(String) });
    }
    expect((await serveOnce(['--log-format', 'pretty'], false)).every(isPretty)).toBe(true);
  });

  it('config file: warnings logged, secrets never logged', async () => {
    const file = await writeConfig('serve.json', validConfig({ logLevel: 'trace' }));
    const { io, out } = harness({ loadServer: fakeModule(), onServing: () => out.signals.emit('SIGINT') });
    expect(await runCli(['serve', '--config', file], io)).toBe(0);
    expect(FakeServer.last!.config.targets[0]!.luns[0]!.sizeBytes).toBe(2 ** 30);
    expect(out.logs.find((l) => l.level === 'warn')?.msg).toMatch(/any initiator may log in/);
    expect(out.logs.some((l) => String(l.msg).startsWith('to connect'))).toBe(false);
    expect(JSON.stringify(out.logs)).not.toContain('hunter2');
  });

  it('invalid config → fatal log with the issues, exit 2, server never loaded', async () => {
    const file = await writeConfig('serve-bad.json', { targets: [] });
    let loaded = false;
    const { io, out } = harness({ loadServer: () => ((loaded = true), fakeModule()()) });
    expect(await runCli(['serve', '--config', file], io)).toBe(2);
    expect(loaded).toBe(false);
    expect(out.logs).toHaveLength(1);
    expect(out.logs[0]).toMatchObject({ level: 'fatal', issues: [expect.stringMatching(/^targets: at least one target/)] });
  });

  it('startup failure → fatal log with the message, stop attempted, exit 1', async () => {
    FakeServer.failStart = new Error('LUN file /x is locked by another process');
    try {
      const { io, out } = harness({ loadServer: fakeModule() });
      expect(await runCli(['serve', '--data-dir', path.join(dir, 'd2')], io)).toBe(1);
      const fatal = out.logs.find((l) => l.level === 'fatal')!;
      expect(fatal.msg).toBe('startup failed: LUN file /x is locked by another process');
      expect(FakeServer.last!.events).toEqual(['start', 'stop']);
      expect(out.signals.eventNames()).toEqual([]);
    } finally {
      FakeServer.failStart = undefined;
    }
  });

  it('server module missing → fatal, exit 1', async () => {
    const { io, out } = harness({ loadServer: () => Promise.reject(new Error("Cannot find module './iscsi/server.js'")) });
    expect(await runCli(['serve', '--data-dir', path.join(dir, 'd3')], io)).toBe(1);
    expect(out.logs.at(-1)).toMatchObject({ level: 'fatal', msg: expect.stringMatching(/cannot load the server module/) });
  });

  it('second signal exits immediately with 1', async () => {
    let release!: () => void;
    const { io, out } = harness({
      loadServer: fakeModule(),
      onServing: (server) => {
        (server as FakeServer).stopGate = new Promise((r) => (release = r));
        out.signals.emit('SIGTERM');
        out.signals.emit('SIGINT');
        expect(out.exits).toEqual([1]);
        release();
      },
    });
    expect(await runCli(['serve', '--data-dir', path.join(dir, 'd4')], io)).toBe(0);
    expect(out.logs.some((l) => l.msg === 'SIGINT received again; exiting immediately')).toBe(true);
  });

  it('SIGHUP reloads a valid config, keeps the old one when invalid', async () => {
    const file = await writeConfig('reload.json', validConfig());
    let server!: FakeServer;
    let failure: unknown;
    const { io, out } = harness({
      loadServer: fakeModule(),
      onServing: (s) => {
        server = s as FakeServer;
        void (async () => {
          try {
            await writeConfig('reload.json', validConfig({ logLevel: 'warn', iscsi: { cmdWindow: 64 } }));
            out.signals.emit('SIGHUP');
            await waitFor(() => server.reloads.length === 1);
            expect(server.reloads[0]!.iscsi.cmdWindow).toBe(64);

            await writeConfig('reload.json', { targets: [{ iqn: 'bad', luns: [] }] });
            out.signals.emit('SIGHUP');
            await waitFor(() => out.logs.some((l) => l.level === 'error'));

            FakeServer.failReload = new Error('cannot remove a LUN in use');
            await writeConfig('reload.json', validConfig());
            out.signals.emit('SIGHUP');
            await waitFor(() => out.logs.filter((l) => l.level === 'error').length === 2);
          } catch (e) {
            failure = e;
          } finally {
            FakeServer.failReload = undefined;
            out.signals.emit('SIGTERM');
          }
        })();
      },
    });
    expect(await runCli(['serve', '--config', file], io)).toBe(0);
    expect(failure).toBeUndefined();
    expect(server.events).toEqual(['start', 'reload', 'reload', 'stop']);
    expect(server.reloads).toHaveLength(1);
    const errors = out.logs.filter((l) => l.level === 'error');
    expect(errors[0]).toMatchObject({ issues: expect.arrayContaining([expect.stringMatching(/^targets\[0\]\.iqn: "bad"/)]) });
    expect(errors[0]!.msg).toMatch(/^reload refused, keeping the current configuration: /);
    expect(errors[1]!.msg).toBe('reload failed, keeping the current configuration: cannot remove a LUN in use');
    expect(out.logs.find((l) => l.needRestart)).toMatchObject({
      level: 'warn',
      needRestart: ['portals'],
      msg: 'configuration reloaded, but these changes take effect only after a restart: portals',
    });
    // Log level followed the reloaded config (warn): info lines after the reload are filtered.
    expect(out.logs.some((l) => l.msg === 'SIGTERM received; shutting down')).toBe(false);
  });

  it('SIGHUP without reload support or without a config file only warns', async () => {
    const file = await writeConfig('noreload.json', validConfig());
    const { io, out } = harness({
      loadServer: fakeModule(NoReloadServer),
      onServing: () => {
        out.signals.emit('SIGHUP');
        void waitFor(() => out.logs.some((l) => l.level === 'warn' && /cannot reload/.test(String(l.msg)))).finally(() => out.signals.emit('SIGTERM'));
      },
    });
    expect(await runCli(['serve', '-c', file], io)).toBe(0);
    expect(out.logs.some((l) => l.level === 'warn' && /cannot reload/.test(String(l.msg)))).toBe(true);

    const h2 = harness({
      loadServer: fakeModule(),
      onServing: () => {
        h2.out.signals.emit('SIGHUP');
        void waitFor(() => h2.out.logs.some((l) => /nothing to reload/.test(String(l.msg)))).finally(() => h2.out.signals.emit('SIGTERM'));
      },
    });
    expect(await runCli(['serve', '--data-dir', path.join(dir, 'd5')], h2.io)).toBe(0);
    expect(h2.out.logs.some((l) => l.level === 'warn' && /nothing to reload/.test(String(l.msg)))).toBe(true);
  });

  it('uncaught exceptions are logged as fatal and exit 1', async () => {
    const { io, out } = harness({
      loadServer: fakeModule(),
      onServing: () => {
        out.signals.emit('uncaughtException', new Error('boom'));
        out.signals.emit('SIGTERM');
      },
    });
    await runCli(['serve', '--data-dir', path.join(dir, 'd6')], io);
    expect(out.exits).toEqual([1]);
    expect(out.logs.find((l) => l.level === 'fatal')).toMatchObject({ msg: 'internal error: boom', err: { message: 'boom' } });
  });
});

describe('connectHints', () => {
  it('uses loopback for wildcard portals and the advertised address when set', () => {
    const cfg = embeddedDefaultConfig({ env: {}, cwd: '/x' });
    expect(connectHints({ ...cfg, portals: [{ host: '0.0.0.0', port: 3260, tpgt: 1 }] })!.discovery).toBe(
      'iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260',
    );
    expect(connectHints({ ...cfg, portals: [{ host: '::', port: 3260, tpgt: 1 }] })!.discovery).toBe('iscsiadm -m discovery -t sendtargets -p [::1]:3260');
    expect(connectHints({ ...cfg, portals: [{ host: '0.0.0.0', port: 3260, tpgt: 1, advertise: '10.0.2.100:3260' }] })!.qemu).toBe(
      'qemu-system-x86_64 -drive file=iscsi://10.0.2.100:3260/iqn.2016-06.org.gluster:glfs-target/0,format=raw,if=virtio',
    );
  });
});
