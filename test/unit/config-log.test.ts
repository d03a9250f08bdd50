import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';

function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const logger = createLogger(level, {
    write: (s: string) => {
      raw.push(s);
      lines.push(JSON.parse(s) as Record<string, unknown>);
    },
  });
  return { logger, lines, raw };
}

describe('createLogger', () => {
  it('writes JSON lines with a string level and ISO time', () => {
    const { logger, lines } = capture();
    logger.info({ a: 1 }, 'hello');
    logger.debug('hidden');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'hello', a: 1, pid: process.pid });
    expect(String(lines[0]!.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('honours the level', () => {
    const { logger, lines } = capture('warn');
    logger.info('no');
    logger.warn('yes');
    expect(lines.map((l) => l.msg)).toEqual(['yes']);
  });

  it('never writes secrets', () => {
    const { logger, raw } = capture('trace');
    const config = parseConfig(
      {
        targets: [
          {
            iqn: 'iqn.2016-06.org.gluster:node1',
            luns: [{ lun: 0, path: '/a' }],
            acl: [{ initiator: '*', chap: { username: 'u', secret: 'S3CRET-one', mutual: { username: 't', secret: 'S3CRET-two' } } }],
          },
        ],
      },
      '/',
    );
    logger.info({ config }, 'config');
    logger.info(config, 'config as the object');
    logger.info({ acl: config.targets[0]!.acl }, 'acl');
    logger.info({ chap: { secret: 'S3CRET-three', mutual: { secret: 'S3CRET-four' } } }, 'chap');
    logger.debug({ keys: { CHAP_R: '0xS3CRET', CHAP_C: '0xS3CRET', CHAP_N: 'user' } }, 'login keys');
    logger.debug({ a: { b: { c: { password: 'S3CRET-pw' } } } }, 'deep');
    const all = raw.join('');
    expect(all).not.toContain('S3CRET');
    expect(all).toContain('"username":"u"');
    expect(all).toContain('"CHAP_N":"user"');
    expect(all).toContain('"secret":"***"');
  });
});
