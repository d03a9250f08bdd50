import { BHS_LENGTH } from './opcodes.js';
import type { BufferPool } from './buffer-pool.js';
import { computeDigest, readDigest } from './digest.js';
import { Pdu } from './pdu.js';

export type FramingErrorKind =
  /** Header digest mismatch: the lengths cannot be trusted; at ERL 0 the connection must close (RFC 7143 §7.8). */
  | 'header-digest'
  /** Data digest mismatch: the PDU was discarded; answer with Reject reason 0x02 (RFC 7143 §7.8, §11.17.1). */
  | 'data-digest'
  /** Data segment longer than the negotiated MaxRecvDataSegmentLength: its bytes were skipped. */
  | 'oversize';

export interface FramingError {
  kind: FramingErrorKind;
  /** The offending PDU's BHS (a copy), when known: Reject PDUs carry it back. */
  bhs: Buffer;
  message: string;
}

const enum State { Header, Data, Skip }

const MAX_HEADER = BHS_LENGTH + 255 * 4 + 4;

/**
 * Streaming PDU framer (RFC 7143 §11.2): feed it whatever the socket delivers; it calls `onPdu`
 * synchronously for every complete PDU, whether PDUs arrive split across reads or many per read.
 *
 * Chunks are borrowed: the socket reads into one reused buffer, so nothing may keep a view of a
 * chunk after `push` returns. Each PDU's header is copied into a small buffer of its own and its
 * data segment into a buffer from the pool (one copy per byte, no allocation on the hot path);
 * whoever ends up owning the data may give it back with `pool.release`.
 *
 * Digest use and the size limit can change between PDUs (after login); they are read when each
 * header is parsed.
 */
export class PduFramer {
  headerDigest = false;
  dataDigest = false;
  /** Largest data segment accepted (our declared MaxRecvDataSegmentLength). */
  maxDataSegmentLength = 8192;

  private state = State.Header;
  private readonly headerBuf = Buffer.allocUnsafe(MAX_HEADER);
  private headerFill = 0;
  private headerNeed = BHS_LENGTH;
  private bhs: Buffer | null = null;
  private ahs: Buffer | null = null;
  private dataLength = 0;
  /** The data segment being received (Data state), and the padding + digest bytes after it. */
  private data: Buffer | null = null;
  private readonly tail = Buffer.alloc(8);
  /** Bytes of data segment + padding + data digest received (Data state) or still to skip (Skip). */
  private segmentFill = 0;
  private segmentNeed = 0;
  private stopped = false;

  constructor(
    private readonly onPdu: (pdu: Pdu) => void,
    private readonly onError: (error: FramingError) => void,
    readonly pool: BufferPool,
  ) {}

  /** Stop delivering PDUs (after a fatal error or when the connection closes). */
  stop(): void {
    this.stopped = true;
    if (this.data !== null) this.pool.release(this.data);
    this.data = null;
  }

  push(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    while (off < len && !this.stopped) {
      if (this.state === State.Header) {
        if (this.headerFill === 0 && len - off >= BHS_LENGTH) {
          const need = this.headerLength(chunk, off);
          if (len - off >= need) {
            this.beginPdu(Buffer.from(chunk.subarray(off, off + need)));
            off += need;
            continue;
          }
        }
        off = this.fillHeader(chunk, off);
      } else if (this.state === State.Data) {
        const n = Math.min(len - off, this.segmentNeed - this.segmentFill);
        const inData = Math.max(0, Math.min(n, this.dataLength - this.segmentFill));
        if (inData > 0) chunk.copy(this.data!, this.segmentFill, off, off + inData);
        if (n > inData) chunk.copy(this.tail, this.segmentFill + inData - this.dataLength, off + inData, off + n);
        this.segmentFill += n;
        off += n;
        if (this.segmentFill === this.segmentNeed) this.finishData();
      } else {
        const n = Math.min(len - off, this.segmentNeed);
        this.segmentNeed -= n;
        off += n;
        if (this.segmentNeed === 0) this.resetHeader();
      }
    }
  }

  private headerLength(buf: Buffer, off: number): number {
    return BHS_LENGTH + buf[off + 4]! * 4 + (this.headerDigest ? 4 : 0);
  }

  private fillHeader(chunk: Buffer, off: number): number {
    const n = Math.min(chunk.length - off, this.headerNeed - this.headerFill);
    chunk.copy(this.headerBuf, this.headerFill, off, off + n);
    this.headerFill += n;
    off += n;
    if (this.headerFill === BHS_LENGTH && this.headerNeed === BHS_LENGTH) {
      this.headerNeed = this.headerLength(this.headerBuf, 0);
    }
    if (this.headerFill === this.headerNeed) {
      // Copy out: headerBuf is reused for the next split header.
      this.beginPdu(Buffer.from(this.headerBuf.subarray(0, this.headerNeed)));
    }
    return off;
  }

  /** `header` is the PDU's own copy of BHS + AHS (+ header digest). */
  private beginPdu(header: Buffer): void {
    const ahsLength = header[4]! * 4;
    const bhs = header.subarray(0, BHS_LENGTH);
    if (this.headerDigest) {
      const end = BHS_LENGTH + ahsLength;
      if (computeDigest(header.subarray(0, end)) !== readDigest(header, end)) {
        this.stopped = true;
        this.onError({ kind: 'header-digest', bhs, message: 'header digest mismatch' });
        return;
      }
    }
    this.bhs = bhs;
    this.ahs = ahsLength > 0 ? header.subarray(BHS_LENGTH, BHS_LENGTH + ahsLength) : null;
    this.dataLength = (header[5]! << 16) | (header[6]! << 8) | header[7]!;
    if (this.dataLength === 0) {
      this.resetHeader();
      this.onPdu(new Pdu(bhs, this.ahs, EMPTY));
      return;
    }
    const wire = ((this.dataLength + 3) & ~3) + (this.dataDigest ? 4 : 0);
    if (this.dataLength > this.maxDataSegmentLength) {
      this.state = State.Skip;
      this.segmentNeed = wire;
      this.headerFill = 0;
      this.onError({
        kind: 'oversize',
        bhs,
        message: `data segment of ${this.dataLength} bytes exceeds MaxRecvDataSegmentLength ${this.maxDataSegmentLength}`,
      });
      return;
    }
    this.state = State.Data;
    this.data = this.pool.acquire(this.dataLength);
    this.segmentNeed = wire;
    this.segmentFill = 0;
  }

  /** The data segment is in `data`, its padding and (if negotiated) digest in `tail`. */
  private finishData(): void {
    const bhs = this.bhs!;
    const ahs = this.ahs;
    const data = this.data!;
    this.data = null;
    this.resetHeader();
    if (this.dataDigest) {
      const pad = (4 - (data.length & 3)) & 3;
      if (computeDigest(data, pad > 0 ? this.tail.subarray(0, pad) : undefined) !== readDigest(this.tail, pad)) {
        this.pool.release(data);
        this.onError({ kind: 'data-digest', bhs, message: 'data digest mismatch' });
        return;
      }
    }
    this.onPdu(new Pdu(bhs, ahs, data));
  }

  private resetHeader(): void {
    this.state = State.Header;
    this.headerFill = 0;
    this.headerNeed = BHS_LENGTH;
    this.bhs = null;
    this.ahs = null;
  }
}

const EMPTY = Buffer.alloc(0);
