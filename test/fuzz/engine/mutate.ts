/** Seeded byte mutations in the manner of libFuzzer's mutators: the same seed gives the same inputs. */

/** mulberry32: a small, fast, seedable PRNG. */
export class Prng {
  private state: number;
  constructor(seed: number) { this.state = seed >>> 0; }
  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [0, n). */
  below(n: number): number { return n <= 1 ? 0 : this.u32() % n; }
  chance(p: number): boolean { return this.u32() / 2 ** 32 < p; }
  pick<T>(items: readonly T[]): T { return items[this.below(items.length)]!; }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0xffffff, 0x7fffffff, 0x80000000, 0xffffffff];

type Mutation = (input: Buffer, rng: Prng, extra: MutationSources) => Buffer;

export interface MutationSources {
  /** Constants the code compared against (coverage.ts). */
  dictionary: readonly Buffer[];
  /** Other inputs of the corpus, for crossover. */
  corpus: readonly Buffer[];
}

const flipBit: Mutation = (b, rng) => {
  if (b.length === 0) return rng.bytes(1);
  const out = Buffer.from(b);
  out[rng.below(out.length)]! ^= 1 << rng.below(8);
  return out;
};

const setByte: Mutation = (b, rng) => {
  if (b.length === 0) return rng.bytes(1);
  const out = Buffer.from(b);
  out[rng.below(out.length)] = rng.u32() & 0xff;
  return out;
};

const addToByte: Mutation = (b, rng) => {
  if (b.length === 0) return rng.bytes(1);
  const out = Buffer.from(b);
  const i = rng.below(out.length);
  out[i] = (out[i]! + rng.below(70) - 35) & 0xff;
  return out;
};

const interestingInteger: Mutation = (b, rng) => {
  const width = rng.pick([1, 2, 4]);
  if (b.length < width) return Buffer.concat([b, rng.bytes(width)]);
  const out = Buffer.from(b);
  const at = rng.below(out.length - width + 1);
  const v = rng.pick(INTERESTING);
  if (width === 1) out[at] = v & 0xff;
  else if (width === 2) out.writeUInt16BE(v & 0xffff, at);
  else out.writeUInt32BE(v >>> 0, at);
  return out;
};

const eraseBytes: Mutation = (b, rng) => {
  if (b.length < 2) return b;
  const at = rng.below(b.length);
  const n = 1 + rng.below(Math.min(b.length - at, 16));
  return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
};

const insertBytes: Mutation = (b, rng) => {
  const at = rng.below(b.length + 1);
  return Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.below(8)), b.subarray(at)]);
};

const duplicateRange: Mutation = (b, rng) => {
  if (b.length === 0) return rng.bytes(4);
  const from = rng.below(b.length);
  const n = 1 + rng.below(Math.min(b.length - from, 64));
  const at = rng.below(b.length + 1);
  return Buffer.concat([b.subarray(0, at), b.subarray(from, from + n), b.subarray(at)]);
};

const dictionaryToken: Mutation = (b, rng, { dictionary }) => {
  if (dictionary.length === 0) return setByte(b, rng, { dictionary, corpus: [] });
  const token = rng.pick(dictionary);
  const at = rng.below(b.length + 1);
  if (rng.chance(0.5)) return Buffer.concat([b.subarray(0, at), token, b.subarray(at)]);
  const out = Buffer.from(b.length >= at + token.length ? b : Buffer.concat([b, Buffer.alloc(at + token.length - b.length)]));
  token.copy(out, at);
  return out;
};

const crossOver: Mutation = (b, rng, { corpus }) => {
  if (corpus.length === 0) return b;
  const other = rng.pick(corpus);
  const cut = rng.below(b.length + 1);
  const otherCut = rng.below(other.length + 1);
  return Buffer.concat([b.subarray(0, cut), other.subarray(otherCut)]);
};

const MUTATIONS: Mutation[] = [flipBit, setByte, addToByte, interestingInteger, eraseBytes, insertBytes, duplicateRange, dictionaryToken, dictionaryToken, crossOver];

/** 1–5 stacked mutations of `input`, at most `maxLength` bytes long. */
export function mutate(input: Buffer, rng: Prng, sources: MutationSources, maxLength: number): Buffer {
  let out = input;
  const n = 1 + rng.below(5);
  for (let i = 0; i < n; i++) out = rng.pick(MUTATIONS)(out, rng, sources);
  return out.length > maxLength ? out.subarray(0, maxLength) : out;
}
