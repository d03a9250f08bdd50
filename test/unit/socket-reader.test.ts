import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { readThroughSharedBuffer } from '../../src/iscsi/socket-reader.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A listener with pauseOnConnect whose accepted sockets go through readThroughSharedBuffer. */
async function serve(onChunk: (chunk: Buffer, socket: net.Socket) => void): Promise<{ port: number; sockets: net.Socket[]; accepted: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (a) => {
    accepted.push(a);
    const s: net.Socket = readThroughSharedBuffer(a, (chunk) => onChunk(chunk, s));
    sockets.push(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, sockets, accepted };
}

describe('readThroughSharedBuffer', () => {
  it('re-wraps the accepted socket on this Node.js (not the fallback) and delivers every byte in order', async () => {
    const received: Buffer[] = [];
    const { port, sockets, accepted } = await serve((chunk) => received.push(Buffer.from(chunk)));
    const payload = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 131) & 0xff;
    const client = net.connect(port, '127.0.0.1');
    cleanups.push(() => client.destroy());
    client.end(payload);
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (received.reduce((n, c) => n + c.length, 0) >= payload.length) { clearInterval(check); resolve(); }
      }, 5);
    });
    expect(sockets[0]).not.toBe(accepted[0]);
    expect(accepted[0]!.destroyed).toBe(true);
    expect(Buffer.concat(received).equals(payload)).toBe(true);
  });

  it('writes, pause/resume and close work on the re-wrapped socket', async () => {
    let paused = 0;
    const { port, sockets } = await serve((chunk, s) => {
      s.write(Buffer.from(chunk).toString('utf8').toUpperCase());
      if (paused++ === 0) {
        s.pause();
        setTimeout(() => s.resume(), 20);
      }
    });
    const client = net.connect(port, '127.0.0.1');
    cleanups.push(() => client.destroy());
    await once(client, 'connect');
    let echoed = '';
    client.on('data', (d: Buffer) => { echoed += d.toString(); });
    client.write('hello');
    await new Promise((r) => setTimeout(r, 50));
    client.write(' world');
    await new Promise<void>((resolve) => {
      const check = setInterval(() => { if (echoed === 'HELLO WORLD') { clearInterval(check); resolve(); } }, 5);
    });
    const closed = once(sockets[0]!, 'close');
    client.end();
    await closed;
    expect(echoed).toBe('HELLO WORLD');
  });
});
