// Loopback port helpers for the plain-Node conformance runner (test/conformance/run-test-cu.mjs).
import { createServer, Socket } from 'node:net';

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

/** Whether something accepts connections on 127.0.0.1:port (1 s timeout). */
export function canConnect(port) {
  return new Promise((res) => {
    const s = new Socket();
    const done = (ok) => { s.destroy(); res(ok); };
    s.setTimeout(1000, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, '127.0.0.1', () => done(true));
  });
}
