// Bounded backend calls (src/backend/bounded-backend.ts) over storage that stops answering, as a
// FUSE mount does when its gluster client is stopped: at most maxInFlight calls reach it, every call
// ends by its deadline or its task's abort, and what was given up on is still accounted for.
import { describe, expect, it } from 'vitest';
import { ABORT_GRACE_MS, BoundedBackend, type CallOwner } from '../../src/backend/bounded-backend.js';
import { DEFAULT_ISCSI_SETTINGS } from '../../src/config/schema.js';
import type { IscsiSettings } from '../../src/config/types.js';
import { backendCallBounds, threadPoolSize } from '../../src/iscsi/server.js';
import { HangingBackend, rejection, within } from './hanging-backend.js';

const DEADLINE = 300;

/** A task as the backend sees it: abort it with `abort()`; `pinned` tells whether a call pinned its buffers. */
function owner(): CallOwner & { abort(): void; pinned: boolean } {
  const listeners: Array<() => void> = [];
  return {
    aborted: false,
    pinned: false,
    whenAborted(l) { listeners.push(l); return () => listeners.splice(listeners.indexOf(l), 1); },
    pinBuffers() { this.pinned = true; },
    abort() { (this as { aborted: boolean }).aborted = true; for (const l of [...listeners]) l(); },
  };
}

function setup(maxInFlight = 2): { storage: HangingBackend; b: BoundedBackend } {
  const storage = new HangingBackend(64 * 1024);
  return { storage, b: new BoundedBackend(storage, { maxInFlight, deadlineMs: DEADLINE }) };
}

describe('bounded backend calls', () => {
  it('a call the storage never answers fails with ETIMEDOUT by its deadline; at most maxInFlight reach the storage', async () => {
    const { storage, b } = setup(2);
    storage.hung = true;
    const t0 = Date.now();
    const calls = [0, 1, 2, 3].map((i) => rejection(b.read(Buffer.alloc(512), i * 512)));
    await new Promise((r) => setTimeout(r, 20));
    expect(storage.issued).toBe(2); // the other two wait for a slot, outside the thread pool
    expect(await Promise.all(calls)).toEqual(['ETIMEDOUT', 'ETIMEDOUT', 'ETIMEDOUT', 'ETIMEDOUT']);
    expect(Date.now() - t0).toBeLessThan(DEADLINE + 2000);
    expect(storage.issued, 'calls that timed out waiting for a slot are never issued').toBe(2);
    // The two stuck calls keep their slots: a new call waits for them, and runs once they return.
    const next = b.read(Buffer.alloc(512), 0);
    await new Promise((r) => setTimeout(r, 20));
    expect(storage.issued).toBe(2);
    storage.resume();
    await next;
    expect(storage.issued).toBe(3);
  });

  it('aborting the owner ends a call waiting for a slot at once (never issued) and a running one after the grace, its buffers pinned', async () => {
    const { storage, b } = setup(1);
    storage.hung = true;
    const running = owner();
    const queued = owner();
    const first = rejection(b.read(Buffer.alloc(512), 0, running));
    const second = rejection(b.read(Buffer.alloc(512), 512, queued));
    await new Promise((r) => setTimeout(r, 20));
    queued.abort();
    expect(await within(second, 50)).toBe('ECANCELED');
    expect(queued.pinned).toBe(false);
    running.abort();
    const t0 = Date.now();
    expect(await within(first, Math.min(ABORT_GRACE_MS, DEADLINE) + 500)).toMatch(/ECANCELED|ETIMEDOUT/);
    expect(Date.now() - t0).toBeLessThan(DEADLINE + 500);
    expect(running.pinned, 'the stuck read may still fill its buffer').toBe(true);
    storage.resume();
    expect(storage.issued).toBe(1);
  });

  it('an aborted call the storage answers within the grace completes normally: nothing pinned, nothing left to land', async () => {
    const storage = new HangingBackend(64 * 1024);
    const b = new BoundedBackend(storage, { maxInFlight: 2, deadlineMs: 10_000 });
    storage.hung = true;
    const o = owner();
    const w = b.write(Buffer.alloc(512, 0xaa), 0, false, o);
    await new Promise((r) => setTimeout(r, 20));
    o.abort();
    setTimeout(() => storage.resume(), 50);
    await w;
    expect(o.pinned).toBe(false);
    expect(b.stuckCalls).toBe(0);
  });

  it('a write given up on stays ahead of later writes that overlap it; others go at once', async () => {
    const { storage, b } = setup(4);
    storage.hung = true;
    expect(await rejection(b.write(Buffer.alloc(1024, 0x01), 0, false))).toBe('ETIMEDOUT');
    expect(b.stuckCalls).toBe(1);
    storage.hung = false;
    // Not overlapping: lands now.
    await b.write(Buffer.alloc(512, 0x03), 4096, false);
    expect(storage.mem.data[4096]).toBe(0x03);
    // Overlapping (the initiator rewrote the block it was told failed): waits for the stuck write.
    let landed = false;
    const rewrite = b.write(Buffer.alloc(512, 0x02), 512, false).then(() => { landed = true; });
    await new Promise((r) => setTimeout(r, 50));
    expect(landed).toBe(false);
    storage.resume();
    await rewrite;
    expect(storage.mem.data[0]).toBe(0x01);
    expect(storage.mem.data[512], 'the newer data, not the stuck write landing over it').toBe(0x02);
  });

  it('a flush is never GOOD while a write it covers is unresolved; it is once that write has landed', async () => {
    const { storage, b } = setup(4);
    storage.hung = true;
    expect(await rejection(b.write(Buffer.alloc(512, 0x01), 0, false))).toBe('ETIMEDOUT');
    storage.hung = false;
    expect(await rejection(b.flush()), 'the write may still land (or fail): no durability claimed').toBe('ETIMEDOUT');
    expect(storage.mem.stats.flushes).toBe(0);
    const flushed = b.flush();
    storage.resume();
    await flushed;
    expect(storage.mem.stats.flushes).toBe(1);
  });
});

describe('the bounds the server gives every LUN', () => {
  it('fit the thread pool: the configured calls per LUN below its size, else half of it', () => {
    expect(threadPoolSize({})).toBe(4); // libuv's default when nothing set it
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '128' })).toBe(128);
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '5000' })).toBe(1024);
    const settings = { ...DEFAULT_ISCSI_SETTINGS } as IscsiSettings;
    expect(backendCallBounds(settings, 128)).toEqual({ maxInFlight: 32, deadlineMs: 43_000, clamped: false });
    expect(backendCallBounds(settings, 32)).toEqual({ maxInFlight: 16, deadlineMs: 43_000, clamped: true });
    expect(backendCallBounds(settings, 4)).toEqual({ maxInFlight: 2, deadlineMs: 43_000, clamped: true });
    expect(backendCallBounds({ ...settings, backendCallsPerLun: 8, backendTimeout: 5 }, 16)).toEqual({ maxInFlight: 8, deadlineMs: 5000, clamped: false });
  });
});
