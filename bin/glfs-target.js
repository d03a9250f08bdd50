#!/usr/bin/env node
// File I/O runs on libuv's thread pool; size it to the command queue depth before the pool
// starts (it is created on first use), unless the operator chose a size.
process.env.UV_THREADPOOL_SIZE ??= '32';
await import('../dist/cli.js');
