/**
 * The runtime side of Jazzer.js's instrumentation (@jazzer.js/instrumentor), without its native
 * libFuzzer addon: that prebuilt binary needs glibc 2.38 and GLIBCXX_3.4.32, newer than Debian 12
 * (our CI). Instrumented modules call `Fuzzer.coverageTracker.createModuleCounters(n)` once and
 * bump one byte counter per edge; comparisons go through `Fuzzer.tracer.*`, whose constant
 * operands we keep as a dictionary for the mutator (what libFuzzer's CMP tracing does).
 */
const moduleCounters: Uint8Array[] = [];
/** Per counter: the hit-count buckets (bits) seen so far, as libFuzzer's 8 buckets. */
const seenBuckets: Uint8Array[] = [];

const MAX_TOKENS = 1024;
const tokens = new Set<string>();

function bucket(count: number): number {
  return count >= 128 ? 0x80 : count >= 32 ? 0x40 : count >= 16 ? 0x20 : count >= 8 ? 0x10
    : count >= 4 ? 0x08 : count === 3 ? 0x04 : count === 2 ? 0x02 : 0x01;
}

/** Whether the run since the last call reached an edge, or an edge's hit-count bucket, never seen before. Resets the counters. */
export function takeNewCoverage(): boolean {
  let found = false;
  for (let m = 0; m < moduleCounters.length; m++) {
    const counters = moduleCounters[m]!;
    const seen = seenBuckets[m]!;
    for (let i = 0; i < counters.length; i++) {
      const c = counters[i]!;
      if (c === 0) continue;
      counters[i] = 0;
      const b = bucket(c);
      if ((seen[i]! & b) === 0) { seen[i]! |= b; found = true; }
    }
  }
  return found;
}

/** Edges (basic blocks and branches) reached at least once, and the instrumented total. */
export function edgeCoverage(): { covered: number; total: number } {
  let covered = 0;
  let total = 0;
  for (const seen of seenBuckets) {
    total += seen.length;
    for (const s of seen) if (s !== 0) covered++;
  }
  return { covered, total };
}

/** Constants the code under test compared input-derived values with (strings as UTF-8, integers big-endian). */
export function dictionary(): Buffer[] {
  return [...tokens].map((t) => Buffer.from(t, 'latin1'));
}

function addToken(bytes: Buffer): void {
  if (tokens.size < MAX_TOKENS && bytes.length > 0 && bytes.length <= 64) tokens.add(bytes.toString('latin1'));
}

function noteString(a: unknown, b: unknown): void {
  if (typeof a === 'string' && a !== b) addToken(Buffer.from(a, 'utf8'));
  if (typeof b === 'string' && a !== b) addToken(Buffer.from(b, 'utf8'));
}

function noteNumber(n: unknown): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff || tokens.size >= MAX_TOKENS) return;
  const be = Buffer.alloc(4);
  be.writeUInt32BE(n);
  addToken(n <= 0xff ? be.subarray(3) : n <= 0xffff ? be.subarray(2) : be);
}

function compare(a: unknown, b: unknown, operator: string): boolean {
  switch (operator) {
    case '==': return a == b;
    case '===': return a === b;
    case '!=': return a != b;
    case '!==': return a !== b;
    case '<': return (a as number) < (b as number);
    case '<=': return (a as number) <= (b as number);
    case '>': return (a as number) > (b as number);
    default: return (a as number) >= (b as number);
  }
}

/** The globals instrumented code calls (names fixed by @jazzer.js/instrumentor 4). */
export function installRuntime(): void {
  Object.assign(globalThis, {
    Fuzzer: {
      coverageTracker: {
        createModuleCounters(edges: number): Uint8Array {
          const counters = new Uint8Array(edges);
          moduleCounters.push(counters);
          seenBuckets.push(new Uint8Array(edges));
          return counters;
        },
      },
      tracer: {
        traceStrCmp(a: unknown, b: unknown, operator: string): boolean {
          noteString(a, b);
          return compare(a, b, operator);
        },
        traceNumberCmp(a: unknown, b: unknown, operator: string): boolean {
          if (a !== b) {
            noteNumber(a);
            noteNumber(b);
            // An ordering is crossed one past the constant (libFuzzer tries the neighbours too).
            if (operator[0] === '<' || operator[0] === '>') for (const n of [a, b]) if (typeof n === 'number') { noteNumber(n + 1); noteNumber(n - 1); }
          }
          return compare(a, b, operator);
        },
        traceAndReturn(current: unknown, target: unknown): unknown {
          if (current !== target) { noteNumber(target); noteString(current, target); }
          return target;
        },
      },
    },
    __jazzer_registerSourceMap: () => {},
  });
}
