import net from 'node:net';

/**
 * Every accepted connection reads into this one buffer (net.Socket's `onread` option) instead of
 * a fresh 64 KiB allocation per read, which at hundreds of MB/s kept V8's full garbage collector
 * busy (docs/benchmarks.md). One buffer serves all sockets: libuv reads a socket into it and runs
 * that socket's callback before it reads any other, and the callback (PduFramer.push) copies out
 * everything it keeps before it returns.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafeSlow(256 * 1024);

/** The internals of a server-accepted socket this module relies on (stable since Node 12). */
interface AcceptedSocket extends net.Socket {
  _handle: { useUserBuffer?: unknown; reading?: boolean } | null;
}

/**
 * Re-wrap a socket accepted with `pauseOnConnect` so that its data goes to `onChunk` through the
 * shared read buffer; the chunk passed to `onChunk` is valid only during the call. Returns the
 * socket to use from now on. When this Node.js does not offer what that needs, the socket
 * delivers ordinary 'data' events to `onChunk` instead (each chunk then owned by the callee).
 */
export function readThroughSharedBuffer(accepted: net.Socket, onChunk: (chunk: Buffer) => void): net.Socket {
  const shell = accepted as AcceptedSocket;
  const handle = shell._handle;
  if (handle === null || typeof handle.useUserBuffer !== 'function' || handle.reading) {
    accepted.on('data', onChunk);
    accepted.resume();
    return accepted;
  }
  // Detach the handle so that destroying the shell (which keeps the server's connection count
  // right) does not close it, then let a new Socket own it with a user buffer.
  shell._handle = null;
  const options = {
    handle,
    readable: true,
    writable: true,
    allowHalfOpen: false,
    writableHighWaterMark: accepted.writableHighWaterMark,
    onread: {
      buffer: SHARED_READ_BUFFER,
      callback: (bytes: number, buf: Uint8Array) => {
        onChunk((buf as Buffer).subarray(0, bytes));
      },
    },
  };
  const socket = new net.Socket(options as net.SocketConstructorOpts);
  accepted.destroy();
  return socket;
}
