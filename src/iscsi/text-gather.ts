/**
 * Text that arrives in several PDUs (C bit, RFC 7143 §6.1, §11.10.2, §11.12.2), gathered up to a
 * bound. §6.1 obliges a receiver to take at least 8192 bytes of key=value text per negotiation,
 * or 64 KiB when long authentication items are in use; we take 64 KiB in every case and refuse
 * what goes beyond, so a peer sending endless text costs at most that much memory.
 */
export const MAX_GATHERED_TEXT = 64 * 1024;

export class TextGatherer {
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(readonly limit = MAX_GATHERED_TEXT) {}

  /** Bytes gathered so far. */
  get size(): number {
    return this.bytes;
  }

  /**
   * Add one PDU's text. Returns false, and drops everything gathered, when the total would exceed
   * the limit.
   */
  add(data: Buffer): boolean {
    if (this.bytes + data.length > this.limit) {
      this.clear();
      return false;
    }
    if (data.length > 0) {
      this.parts.push(data);
      this.bytes += data.length;
    }
    return true;
  }

  /** Everything gathered, as one buffer; the gatherer starts empty again. */
  take(): Buffer {
    const text = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.bytes);
    this.clear();
    return text;
  }

  clear(): void {
    this.parts = [];
    this.bytes = 0;
  }
}
