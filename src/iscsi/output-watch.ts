import type { Socket } from 'node:net';

/**
 * Whether a peer takes what we send: output is stalled when bytes are queued on the socket and
 * none has moved to the kernel for the timeout (the peer stopped reading; its TCP window is shut).
 */
export class OutputWatch {
  private taken = 0;
  private movedAt = Date.now();

  constructor(private readonly socket: Socket) {}

  /** Bytes queued and stalled for `timeoutMs` as of `now`. */
  stalled(now: number, timeoutMs: number): boolean {
    const s = this.socket;
    const taken = s.bytesWritten - s.writableLength;
    if (s.writableLength === 0 || taken !== this.taken) {
      this.taken = taken;
      this.movedAt = now;
      return false;
    }
    return now - this.movedAt >= timeoutMs;
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }
}
