import type { Socket } from 'node:net';
import { BHS_LENGTH } from './opcodes.js';
import { computeDigest, writeDigest } from './digest.js';

const ZERO_PAD = Buffer.alloc(4);

/**
 * Serialises PDUs onto a socket: BHS (+ header digest), data segment, padding to a 4-byte
 * boundary (RFC 7143 §11.2.4) and data digest, gathered into one writev by corking.
 * `header` buffers come from `newHeader` and have room for the header digest.
 */
export class PduWriter {
  headerDigest = false;
  dataDigest = false;
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  constructor(private readonly socket: Socket) {}

  /**
   * Everything sent during one turn of the event loop (e.g. the completions of every read that
   * finished in the same poll phase) leaves in one writev: the socket is corked on the first
   * send and uncorked in the check phase that follows.
   */
  private batch(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(this.uncork);
  }

  /**
   * Send one PDU; sets DataSegmentLength from `data`. Returns false when the socket's buffer is
   * above its high-water mark (the caller may wait for 'drain'). `onWritten` runs once the PDU
   * has been handed to the kernel (or the socket failed): `data` may be reused from then on. It
   * never runs when the socket is already gone.
   */
  send(header: Buffer, data?: Buffer, onWritten?: () => void): boolean {
    const dataLength = data === undefined ? 0 : data.length;
    header[5] = (dataLength >>> 16) & 0xff;
    header[6] = (dataLength >>> 8) & 0xff;
    header[7] = dataLength & 0xff;
    const socket = this.socket;
    if (socket.destroyed) return false;
    let head: Buffer;
    if (this.headerDigest) {
      writeDigest(header, BHS_LENGTH, computeDigest(header.subarray(0, BHS_LENGTH)));
      head = header.subarray(0, BHS_LENGTH + 4);
    } else {
      head = header.subarray(0, BHS_LENGTH);
    }
    this.batch();
    if (dataLength === 0) return socket.write(head, onWritten);
    const pad = (4 - (dataLength & 3)) & 3;
    let tail: Buffer | null = null;
    if (this.dataDigest) {
      tail = Buffer.allocUnsafe(pad + 4);
      ZERO_PAD.copy(tail, 0, 0, pad);
      const crc = computeDigest(data!, pad > 0 ? ZERO_PAD.subarray(0, pad) : undefined);
      writeDigest(tail, pad, crc);
    } else if (pad > 0) {
      tail = ZERO_PAD.subarray(0, pad);
    }
    if (dataLength <= 1024) {
      // Small payloads: one buffer, one write.
      const out = Buffer.allocUnsafe(head.length + dataLength + (tail === null ? 0 : tail.length));
      head.copy(out, 0);
      data!.copy(out, head.length);
      if (tail !== null) tail.copy(out, head.length + dataLength);
      return socket.write(out, onWritten);
    }
    socket.write(head);
    if (tail === null) {
      socket.write(data!, onWritten);
    } else {
      socket.write(data!);
      socket.write(tail, onWritten);
    }
    return socket.writableLength < socket.writableHighWaterMark;
  }
}

/** A zeroed BHS with room for a header digest. */
export function newHeader(opcode: number, flags: number): Buffer {
  const h = Buffer.alloc(BHS_LENGTH + 4);
  h[0] = opcode;
  h[1] = flags;
  return h;
}
