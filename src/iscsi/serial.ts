/** Serial number arithmetic on 32-bit sequence numbers (RFC 1982, as RFC 7143 §4.2.2.1 requires). */
export function snAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Signed distance a − b in serial space. */
export function snDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function snLessThan(a: number, b: number): boolean {
  return snDiff(a, b) < 0;
}
