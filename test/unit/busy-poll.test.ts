// The event loop's busy-poll window: it keeps the loop awake through the short gaps of a steady
// queue-depth-1 stream, and an idle or lightly loaded server does not spin. A scripted clock
// (time in microseconds, loop turns run by hand) makes each gap exact; the last test runs the
// real event loop.
import { describe, expect, it } from 'vitest';
import { BusyPoll, type BusyPollClock } from '../../src/iscsi/busy-poll.js';

/** Time moves only when the test says; each queued turn costs `turnUs`. */
class ScriptedLoop implements BusyPollClock {
  us = 1_000_000;
  private queued: Array<() => void> = [];
  constructor(private readonly turnUs = 2) {}
  now(): number {
    return this.us / 1000;
  }
  soon(fn: () => void): void {
    this.queued.push(fn);
  }
  /** Let `gapUs` pass with the loop turning while anything is queued; true if it was still polling at the end. */
  idle(gapUs: number): boolean {
    const end = this.us + gapUs;
    while (this.queued.length > 0 && this.us < end) {
      const fns = this.queued.splice(0);
      this.us += this.turnUs;
      for (const fn of fns) fn();
    }
    this.us = end;
    return this.queued.length > 0;
  }
}

/** One QD1 command: it arrives after `gapUs`, its response leaves `serviceUs` later. */
function command(poll: BusyPoll, loop: ScriptedLoop, gapUs: number, serviceUs: number): boolean {
  const awake = loop.idle(gapUs);
  poll.activity(true);
  loop.idle(serviceUs);
  poll.activity(false);
  return awake;
}

describe('BusyPoll', () => {
  it('opens to the limit under a steady QD1 stream, and then catches every command', () => {
    const loop = new ScriptedLoop();
    const poll = new BusyPoll(() => 200, loop);
    for (let i = 0; i < 10; i++) command(poll, loop, 60, 40);
    expect(poll.window).toBe(200);
    const caught = Array.from({ length: 100 }, () => command(poll, loop, 60, 40));
    expect(caught.every(Boolean)).toBe(true);
  });

  it('closes under light load: commands 2 ms apart leave no polling after the first few', () => {
    const loop = new ScriptedLoop();
    const poll = new BusyPoll(() => 200, loop);
    for (let i = 0; i < 10; i++) command(poll, loop, 60, 40);
    expect(poll.window).toBe(200);
    for (let i = 0; i < 6; i++) command(poll, loop, 2000, 40);
    expect(poll.window).toBe(0);
    const turns = poll.turns;
    for (let i = 0; i < 20; i++) command(poll, loop, 2000, 40);
    expect(poll.turns).toBe(turns);
  });

  it('stops polling once the window after the last PDU has passed', () => {
    const loop = new ScriptedLoop();
    const poll = new BusyPoll(() => 200, loop);
    for (let i = 0; i < 10; i++) command(poll, loop, 60, 40);
    expect(loop.idle(150)).toBe(true);
    expect(loop.idle(100)).toBe(false);
    const turns = poll.turns;
    loop.idle(1_000_000);
    expect(poll.turns).toBe(turns);
  });

  it('never polls with a limit of 0, and a limit lowered at run time applies at once', () => {
    let limit = 0;
    const loop = new ScriptedLoop();
    const poll = new BusyPoll(() => limit, loop);
    for (let i = 0; i < 10; i++) command(poll, loop, 60, 40);
    expect(poll.turns).toBe(0);
    limit = 200;
    for (let i = 0; i < 10; i++) command(poll, loop, 60, 40);
    expect(poll.window).toBe(200);
    limit = 50;
    command(poll, loop, 60, 40);
    expect(poll.window).toBeLessThanOrEqual(50);
  });

  it('on the real event loop: polls between PDUs, then lets the loop sleep', async () => {
    const poll = new BusyPoll(() => 2000);
    for (let i = 0; i < 5; i++) {
      poll.activity(true);
      await new Promise((r) => setTimeout(r, 1));
    }
    const turns = poll.turns;
    expect(turns).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 50));
    const settled = poll.turns;
    await new Promise((r) => setTimeout(r, 50));
    expect(poll.turns).toBe(settled);
  });
});
