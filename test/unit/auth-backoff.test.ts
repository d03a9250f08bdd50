import { describe, expect, it } from 'vitest';
import { AuthBackoff, MAX_TRACKED, normalize } from '../../src/auth/backoff.js';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('authentication back-off per source address', () => {
  it('blocks from the `after`-th failure, doubling up to max', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 3, initial: 1, max: 8 }, c.now);
    expect(b.recordFailure('10.0.0.1')).toBe(0);
    expect(b.recordFailure('10.0.0.1')).toBe(0);
    expect(b.blockedMs('10.0.0.1')).toBe(0);
    const blocks = [];
    for (let i = 0; i < 6; i++) blocks.push(b.recordFailure('10.0.0.1'));
    expect(blocks).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(b.blockedMs('10.0.0.1')).toBe(8000);
    expect(b.failures('10.0.0.1')).toBe(8);
    c.advance(7999);
    expect(b.blockedMs('10.0.0.1')).toBe(1);
    c.advance(1);
    expect(b.blockedMs('10.0.0.1')).toBe(0);
  });

  it('is per address; other addresses are not affected', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 1, initial: 5, max: 60 }, c.now);
    b.recordFailure('10.0.0.1');
    expect(b.blockedMs('10.0.0.1')).toBe(5000);
    expect(b.blockedMs('10.0.0.2')).toBe(0);
  });

  it('treats IPv4-mapped IPv6 addresses as IPv4', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 1, initial: 5, max: 60 }, c.now);
    b.recordFailure('::ffff:192.0.2.7');
    expect(b.blockedMs('192.0.2.7')).toBe(5000);
    expect(normalize('::FFFF:192.0.2.7')).toBe('192.0.2.7');
    expect(normalize('2001:db8::1')).toBe('2001:db8::1');
  });

  it('after=0 disables it', () => {
    const b = new AuthBackoff({ after: 0, initial: 1, max: 60 });
    for (let i = 0; i < 50; i++) expect(b.recordFailure('10.0.0.1')).toBe(0);
    expect(b.blockedMs('10.0.0.1')).toBe(0);
    expect(b.size).toBe(0);
  });

  it('forgets an address after a quiet period (10 × max, at least 10 minutes)', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 1, initial: 1, max: 60 }, c.now);
    b.recordFailure('10.0.0.1');
    b.recordFailure('10.0.0.1');
    c.advance(600_000);
    expect(b.failures('10.0.0.1')).toBe(2);
    c.advance(1);
    expect(b.failures('10.0.0.1')).toBe(0);
    expect(b.recordFailure('10.0.0.1')).toBe(1000); // starts over
  });

  it('keeps at most MAX_TRACKED addresses, dropping the least recently failing', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 1, initial: 1, max: 60 }, c.now);
    for (let i = 0; i <= MAX_TRACKED; i++) b.recordFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect(b.size).toBe(MAX_TRACKED);
    expect(b.failures('10.0.0.0')).toBe(0);
    expect(b.failures('10.0.0.1')).toBe(1);
  });

  it('settings changes (reload) apply to the next decision', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 5, initial: 1, max: 60 }, c.now);
    b.recordFailure('10.0.0.1');
    b.recordFailure('10.0.0.1');
    expect(b.blockedMs('10.0.0.1')).toBe(0);
    b.settings = { after: 2, initial: 3, max: 60 };
    expect(b.blockedMs('10.0.0.1')).toBe(3000);
  });
});
