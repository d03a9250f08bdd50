import { crc32c } from '@node-rs/crc32';

/**
 * CRC32C (Castagnoli) header/data digest, RFC 7143 §13.1 and Appendix B. The digest is carried
 * least-significant byte first, as the RFC's examples and every implementation (Linux, libiscsi) do.
 * @node-rs/crc32 uses the SSE4.2/ARMv8 CRC instructions where the CPU has them.
 */
export function computeDigest(buf: Buffer, more?: Buffer): number {
  const c = crc32c(buf);
  return more === undefined || more.length === 0 ? c : crc32c(more, c);
}

export function writeDigest(target: Buffer, offset: number, value: number): void {
  target.writeUInt32LE(value >>> 0, offset);
}

export function readDigest(source: Buffer, offset: number): number {
  return source.readUInt32LE(offset);
}
