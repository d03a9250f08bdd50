import { describe, expect, it } from 'vitest';
import { AuthBackoff, MAX_TRACKED, normalize } from '../../src/auth/backoff.js';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

const INI = 'iqn.1994-05.com.redhat:node-a';

describe('CHAP back-off per initiator name and source address', () => {
  it('delays refusals from the `after`-th failure, doubling up to max', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 3, initial: 0.5, max: 4 }, c.now);
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(0);
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(0);
    const delays = [];
    for (let i = 0; i < 6; i++) delays.push(b.recordFailure(INI, '10.0.0.1'));
    expect(delays).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    expect(b.failures(INI, '10.0.0.1')).toBe(8);
  });

  it('never delays more than 5 s, whatever the settings say', () => {
    const b = new AuthBackoff({ after: 1, initial: 60, max: 3600 });
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(5000);
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(5000);
  });

  it('counts per initiator name and address: another initiator or address starts afresh', () => {
    const b = new AuthBackoff({ after: 1, initial: 1, max: 4 });
    b.recordFailure(INI, '10.0.0.1');
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(2000);
    expect(b.recordFailure('iqn.1994-05.com.redhat:node-b', '10.0.0.1')).toBe(1000);
    expect(b.recordFailure(INI, '10.0.0.2')).toBe(1000);
    expect(b.failures(INI.toUpperCase(), '10.0.0.1')).toBe(2); // names compare case-insensitively
  });

  it('treats IPv4-mapped IPv6 addresses as IPv4', () => {
    const b = new AuthBackoff({ after: 1, initial: 1, max: 4 });
    b.recordFailure(INI, '::ffff:192.0.2.7');
    expect(b.failures(INI, '192.0.2.7')).toBe(1);
    expect(normalize('::FFFF:192.0.2.7')).toBe('192.0.2.7');
    expect(normalize('2001:db8::1')).toBe('2001:db8::1');
  });

  it('after=0 disables it', () => {
    const b = new AuthBackoff({ after: 0, initial: 1, max: 60 });
    for (let i = 0; i < 50; i++) expect(b.recordFailure(INI, '10.0.0.1')).toBe(0);
    expect(b.size).toBe(0);
  });

  it('forgets a pair after a quiet period (10 × max, at least 10 minutes)', () => {
    const c = clock();
    const b = new AuthBackoff({ after: 1, initial: 1, max: 4 }, c.now);
    b.recordFailure(INI, '10.0.0.1');
    b.recordFailure(INI, '10.0.0.1');
    c.advance(600_000);
    expect(b.failures(INI, '10.0.0.1')).toBe(2);
    c.advance(1);
    expect(b.failures(INI, '10.0.0.1')).toBe(0);
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(1000); // starts over
  });

  it('keeps at most MAX_TRACKED pairs, dropping the least recently failing', () => {
    const b = new AuthBackoff({ after: 1, initial: 1, max: 60 });
    for (let i = 0; i <= MAX_TRACKED; i++) b.recordFailure(INI, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect(b.size).toBe(MAX_TRACKED);
    expect(b.failures(INI, '10.0.0.0')).toBe(0);
    expect(b.failures(INI, '10.0.0.1')).toBe(1);
  });

  it('settings changes (reload) apply to the next decision', () => {
    const b = new AuthBackoff({ after: 5, initial: 1, max: 4 });
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(0);
    b.settings = { after: 2, initial: 3, max: 4 };
    expect(b.recordFailure(INI, '10.0.0.1')).toBe(3000);
  });
});
