import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { askControlSocket, ControlSocket } from '../../src/ops/control-socket.js';

const dir = mkdtempSync(path.join(tmpdir(), 'glfs-control-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = pino({ level: 'silent' });

describe('control socket', () => {
  it('answers a command, refuses unknown ones, and is mode 0600 in a 0700 directory', async () => {
    const socketPath = path.join(dir, 'run', 'control.sock');
    const control = await ControlSocket.listen(socketPath, { status: async () => ({ answer: 42 }) }, log);
    try {
      expect(statSync(socketPath).mode & 0o777).toBe(0o600);
      expect(statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o700);
      expect(await askControlSocket(socketPath, 'status')).toEqual({ answer: 42 });
      await expect(askControlSocket(socketPath, 'reboot')).rejects.toThrow('the server refused "reboot": unknown command "reboot"; known: status');
    } finally {
      await control.close();
    }
    await expect(askControlSocket(socketPath, 'status')).rejects.toThrow(/no control socket at .*: is glfs-target serve running\?/);
  });

  it('replaces the socket of a server that is gone, never that of one running, nor another file', async () => {
    const socketPath = path.join(dir, 'stale.sock');
    // A socket file nobody listens on: what a server killed with SIGKILL leaves.
    const gone = spawn(process.execPath, ['-e', 'require("node:net").createServer().listen(process.argv[1], () => console.log("up"))', socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(gone.stdout, 'data');
    gone.kill('SIGKILL');
    await once(gone, 'exit');
    expect(statSync(socketPath).isSocket()).toBe(true);
    await expect(askControlSocket(socketPath, 'status')).rejects.toThrow(/nothing listens on .*stale\.sock/);

    const first = await ControlSocket.listen(socketPath, { status: async () => 'first' }, log);
    try {
      await expect(ControlSocket.listen(socketPath, { status: async () => 'second' }, log)).rejects.toMatchObject({ code: 'EADDRINUSE' });
      expect(await askControlSocket(socketPath, 'status')).toBe('first');
    } finally {
      await first.close();
    }
    const file = path.join(dir, 'not-a-socket');
    writeFileSync(file, 'data');
    await expect(ControlSocket.listen(file, {}, log)).rejects.toMatchObject({ code: 'EEXIST' });
  });
});
