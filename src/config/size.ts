/**
 * Size values in the config file: a JSON number of bytes, or a string with an optional unit.
 *
 * Units K, M, G, T, P are ALWAYS binary (powers of 1024), as in LIO's targetcli and qemu-img;
 * the unit letter is case-insensitive and may be followed by "i" and/or "B", so "8G", "8g",
 * "8GiB", "8GB" and "8Gi" all mean 8 × 2^30 bytes. A bare number or a "B" suffix means bytes.
 * Fractions are allowed when the result is a whole number of bytes ("1.5G").
 */

const UNITS: Record<string, number> = {
  '': 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
};

/** The string form; surrounding white space is ignored. No regex flags: it is also the JSON Schema pattern. */
export const SIZE_RE = /^\s*(\d+)(?:\.(\d+))?\s*(?:([kmgtpKMGTP])[iI]?)?[bB]?\s*$/;

/** Bytes for a size value, or undefined if it is not a valid positive size. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const m = SIZE_RE.exec(value);
  if (!m) return undefined;
  const mult = UNITS[(m[3] ?? '').toLowerCase()]!;
  const whole = Number(m[1]);
  const frac = m[2] !== undefined ? Number(`0.${m[2]}`) : 0;
  const bytes = whole * mult + frac * mult;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return undefined;
  return bytes;
}

/** Human-readable binary size ("1 GiB", "512 MiB", "1536 KiB", "100 B"): exact, never rounded. */
export function formatSize(bytes: number): string {
  const names = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = bytes;
  while (i < names.length - 1 && v >= 1024 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v} ${names[i]}`;
}
