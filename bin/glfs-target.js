#!/usr/bin/env node
// File I/O runs on libuv's thread pool, which every LUN shares; size it before the pool starts (it
// is created on first use), unless the operator chose a size. A LUN whose mount hangs holds at most
// iscsi.backendCallsPerLun (32) threads, so 128 leave the other LUNs at least the 32 the whole pool
// had before with three such LUNs; an idle thread costs about 8 KiB of memory.
process.env.UV_THREADPOOL_SIZE ??= '128';
await import('../dist/cli.js');
