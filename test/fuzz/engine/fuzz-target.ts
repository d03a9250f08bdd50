/** What a fuzz target module under test/fuzz/targets exports as `target`. */
export interface FuzzTarget {
  name: string;
  /** Valid inputs to start from (the seed corpus). */
  seeds: Buffer[];
  /** Longest input generated. */
  maxLength: number;
  /** Runs one input; throws (or rejects) when a property of the code under test is violated. */
  run(input: Buffer): void | Promise<void>;
}
