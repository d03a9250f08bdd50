/**
 * `node --import tsx --import ./test/fuzz/engine/instrument.ts …`: installs the coverage runtime
 * and Jazzer.js's ES module loader hook, which instruments every module under src/ (as tsx
 * compiles it) with edge counters and comparison tracing. Test code and node_modules are not
 * instrumented.
 */
import { createRequire, register } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installRuntime } from './coverage.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
installRuntime();
const loader = createRequire(import.meta.url).resolve('@jazzer.js/instrumentor/dist/esm-loader.mjs');
register(loader, import.meta.url, {
  data: { includes: [path.join(repo, 'src') + path.sep], excludes: ['node_modules'], coverage: false, seed: 1 },
});
