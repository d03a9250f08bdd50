import { defineConfig } from 'vitest/config';

/**
 * The VM / gluster / container scenarios: minutes each under TCG, root + qemu + debootstrap, so
 * they are NOT part of `npm test`. Run with `npm run test:vm` (all) or
 * `npx vitest run -c test/vm/vitest.config.ts <file filter>`; `.ci/run` runs them.
 */
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/vm/**/*.vmtest.ts', 'test/gluster/**/*.vmtest.ts', 'test/containers/**/*.vmtest.ts'],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    // One VM at a time: they are CPU-bound under TCG on a 2-core machine.
    fileParallelism: false,
    sequence: { concurrent: false },
    reporters: ['default'],
  },
});
